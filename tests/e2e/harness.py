"""End-to-end test harness: runs the real Stockpot daemons against a real PostgreSQL.

Python 3 standard library only. A test module builds one `Cluster` (its own fresh
PostgreSQL database, free loopback ports, temporary log and write-model directories,
cheap argon2 parameters), starts the daemons it needs, and talks HTTP to them.

Environment:
  SP_BIN_DIR   directory holding stockpot-* binaries (set by ctest); otherwise the
               first <repo>/build*/bin that has them
  PG*          libpq connection of the server to create test databases in (set by
               pg_virtualenv); the database named by PGDATABASE is used for
               CREATE/DROP DATABASE
  SP_E2E_KEEP  if set, keep the temporary directory and database after the run
  SP_E2E_BACKEND  event log backend under test: lmdb (default, the embedded log in a
               temporary directory) or kafka (each Cluster starts its own
               stockpot-kafka-mock: librdkafka's mock cluster, 3 brokers, replication
               factor 3, KAFKA_PARTITIONS partitions, a topic unique to the Cluster, and
               hands STOCKPOT_LOG_BACKEND/STOCKPOT_KAFKA_* to every daemon and tool)
"""

import base64
import select
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DAEMONS = {
    # short name -> (binary, port config key)
    "command": ("stockpot-command-api", "STOCKPOT_COMMAND_PORT"),
    "query": ("stockpot-query-api", "STOCKPOT_QUERY_PORT"),
    "projector": ("stockpot-projector", "STOCKPOT_PROJECTOR_PORT"),
}

JWT_SECRET = "e2e-test-secret-0123456789abcdef0123456789abcdef"

BACKEND = os.environ.get("SP_E2E_BACKEND", "lmdb")
if BACKEND not in ("lmdb", "kafka"):
    raise SystemExit("SP_E2E_BACKEND must be lmdb or kafka, not %r" % BACKEND)
KAFKA_BROKERS = 3
KAFKA_PARTITIONS = 3
KAFKA_REPLICATION_FACTOR = 3


def lmdb_only(reason):
    """Decorator: skip a test or class when the backend under test is Kafka."""
    return unittest.skipIf(BACKEND == "kafka", "LMDB only: " + reason)


def kafka_only(reason):
    """Decorator: skip a test or class unless the backend under test is Kafka."""
    return unittest.skipUnless(BACKEND == "kafka", "Kafka only: " + reason)

_CLUSTERS = []  # every Cluster made in this process, for log dumps and cleanup


def bin_dir():
    """Directory of the stockpot binaries under test."""
    d = os.environ.get("SP_BIN_DIR")
    if d:
        return os.path.abspath(d)
    for cand in sorted(glob.glob(os.path.join(REPO_ROOT, "build*", "bin"))):
        if os.path.exists(os.path.join(cand, "stockpot-replay")):
            return cand
    return os.path.join(REPO_ROOT, "build", "bin")


def binary(name):
    return os.path.join(bin_dir(), name)


def sample_path():
    """The 771 sample recipes shipped in the project (deploy/data/sample.jsonl)."""
    p = os.path.join(REPO_ROOT, "deploy", "data", "sample.jsonl")
    return p


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# PostgreSQL


def psql(sql, dbname=None, check=True):
    """Run one SQL command with psql (PG* env); returns stdout text (unaligned, tuples only)."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
    if dbname:
        cmd[1:1] = ["-d", dbname]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("psql failed (%d): %s\n%s" % (p.returncode, sql, p.stderr))
    return p.stdout.strip()


def require_pg():
    """Skip-free check: the PG* environment must point at a server (pg_virtualenv)."""
    if not os.environ.get("PGHOST") and not os.environ.get("PGPORT"):
        sys.stderr.write("e2e: PGHOST/PGPORT not set; run under pg_virtualenv\n")
    psql("SELECT 1")


# ---------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body  # bytes

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def content_type(self):
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def __repr__(self):
        b = self.body[:600].decode("utf-8", "replace")
        return "<HTTP %d %s %s>" % (self.status, self.header("content-type"), b)


def request(port, method, path, body=None, headers=None, token=None, timeout=60, raw=None):
    """One HTTP/1.1 request to 127.0.0.1:port on a fresh connection.

    body: a JSON-serialisable object (sent as JSON); raw: bytes sent as they are.
    """
    hdrs = {}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    data = None
    if raw is not None:
        data = raw
        hdrs["Content-Type"] = "application/json"
    elif body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    finally:
        conn.close()


class KeepAliveClient:
    """A keep-alive HTTP/1.1 connection that reconnects once if the server closed it."""

    def __init__(self, port, timeout=60):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, token=None):
        hdrs = {"Content-Type": "application/json"}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if headers:
            hdrs.update(headers)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                payload = r.read()
                if r.will_close:
                    self.close()
                return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------------
# JWT (HS256) helpers for forged tokens


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    """(header dict, payload dict) of a compact JWS, without verifying it."""
    h, p, _ = token.split(".")
    return json.loads(_b64url_decode(h)), json.loads(_b64url_decode(p))


def jwt_sign(header, payload, key):
    """Compact HS256 JWS of header/payload signed with key (str or bytes)."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(sig)


def jwt_none(payload):
    """Unsigned token with alg=none (must be rejected)."""
    h = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    p = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    return h + "." + p + "."


# ---------------------------------------------------------------------------
# Kafka (librdkafka's mock cluster through stockpot-kafka-mock)


class KafkaMock:
    """One stockpot-kafka-mock process: brokers on loopback, one pre-created topic (the
    2.0.2 mock cannot create topics through the protocol)."""

    def __init__(self, tmp, topic, brokers=None, partitions=None, replication_factor=None):
        brokers = brokers or KAFKA_BROKERS
        partitions = partitions or KAFKA_PARTITIONS
        replication_factor = replication_factor or KAFKA_REPLICATION_FACTOR
        self.topic = topic
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.log_path = os.path.join(tmp, "kafka-mock.stderr")
        exe = binary("stockpot-kafka-mock")
        if not os.path.exists(exe):
            raise AssertionError("%s missing (build target stockpot-kafka-mock)" % exe)
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [exe, "--brokers", str(brokers), "--topic", topic, "--partitions", str(partitions),
                 "--replication-factor", str(replication_factor)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        self.bootstrap = self._read_bootstrap(30)

    def _read_bootstrap(self, timeout_s):
        """First stdout line of the mock (its bootstrap servers), within timeout_s."""
        deadline = time.monotonic() + timeout_s
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("stockpot-kafka-mock printed no bootstrap servers (exit %s): %s"
                                     % (self.proc.returncode, self.log_tail()))
            rd, _, _ = select.select([self.proc.stdout], [], [], left)
            if rd:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode().strip()
        if not line:
            raise AssertionError("stockpot-kafka-mock printed an empty line")
        return line

    def env(self):
        """STOCKPOT_* settings that point a daemon or tool at this mock."""
        return {
            "STOCKPOT_LOG_BACKEND": "kafka",
            "STOCKPOT_KAFKA_BROKERS": self.bootstrap,
            "STOCKPOT_KAFKA_TOPIC": self.topic,
            "STOCKPOT_KAFKA_PARTITIONS": str(self.partitions),
            "STOCKPOT_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
        }

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode

    def log_tail(self, max_lines=50):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-max_lines:])


# ---------------------------------------------------------------------------
# Daemons


class Daemon:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.binary, self.port_key = DAEMONS[name]
        self.port = cluster.ports[name]
        self.proc = None
        self.starts = 0
        self.log_paths = []

    def start(self, wait=True, timeout=90):
        assert self.proc is None or self.proc.poll() is not None, self.name + " already running"
        self.starts += 1
        path = os.path.join(self.cluster.tmp, "%s.%d.stderr" % (self.name, self.starts))
        self.log_paths.append(path)
        f = open(path, "wb")
        self.proc = subprocess.Popen(
            [binary(self.binary)],
            env=self.cluster.env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=self.cluster.tmp,
        )
        f.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    "%s exited with %s before it was ready; log:\n%s"
                    % (self.name, self.proc.returncode, self.log_tail())
                )
            try:
                r = request(self.port, "GET", "/readyz", timeout=5)
                if r.status == 200:
                    return
                last = r
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("%s not ready after %ss (last: %r)" % (self.name, timeout, last))

    def stop(self, timeout=30):
        """SIGTERM, wait; returns the exit code (kill -9 and raise if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not stop within %ss of SIGTERM" % (self.name, timeout))

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, max_lines=200):
        out = []
        for p in self.log_paths:
            try:
                with open(p, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            if len(lines) > max_lines:
                lines = ["... (%d lines cut)" % (len(lines) - max_lines)] + lines[-max_lines:]
            out.append("----- %s -----\n%s" % (p, "\n".join(lines)))
        return "\n".join(out)

    def log_text(self):
        text = []
        for p in self.log_paths:
            with open(p, "rb") as f:
                text.append(f.read().decode("utf-8", "replace"))
        return "\n".join(text)


class Cluster:
    """A fresh database, temp dirs, free ports and the daemons of one test module."""

    def __init__(self, name, extra_env=None, kafka_partitions=None):
        require_pg()
        self.name = name
        self.daemons = {}
        self.kafka = None
        self.tool_logs = []
        self.dbname = "e2e_%s_%s_%d" % (name, BACKEND, os.getpid())
        self.tmp = tempfile.mkdtemp(prefix="sp-e2e-%s-%s-" % (name, BACKEND))
        _CLUSTERS.append(self)  # from here on, cleanup() undoes what was made
        psql('DROP DATABASE IF EXISTS "%s"' % self.dbname)
        psql('CREATE DATABASE "%s"' % self.dbname)
        self.ports = {k: free_port() for k in DAEMONS}
        env = dict(os.environ)
        env.update(
            {
                "STOCKPOT_LOG_DIR": os.path.join(self.tmp, "log"),
                "STOCKPOT_WRITEMODEL_DIR": os.path.join(self.tmp, "writemodel"),
                "STOCKPOT_VIEWS_DIR": os.path.join(self.tmp, "views"),
                "STOCKPOT_PG_CONNINFO": "dbname=" + self.dbname,
                "STOCKPOT_COMMAND_HOST": "127.0.0.1",
                "STOCKPOT_QUERY_HOST": "127.0.0.1",
                "STOCKPOT_PROJECTOR_HOST": "127.0.0.1",
                "STOCKPOT_COMMAND_PORT": str(self.ports["command"]),
                "STOCKPOT_QUERY_PORT": str(self.ports["query"]),
                "STOCKPOT_PROJECTOR_PORT": str(self.ports["projector"]),
                "STOCKPOT_ARGON2_T_COST": "1",
                # every test client is 127.0.0.1: no login/registration rate limit
                "STOCKPOT_AUTH_RATE_LIMIT_PER_MINUTE": "0",
                "STOCKPOT_ARGON2_M_COST_KIB": "1024",
                "STOCKPOT_JWT_SECRET": JWT_SECRET,
                # ASan: keep leak reports in the captured stderr, fail on them
                "ASAN_OPTIONS": env.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
            }
        )
        for d in ("log", "writemodel"):
            os.makedirs(os.path.join(self.tmp, d), exist_ok=True)
        self.backend = BACKEND
        if BACKEND == "kafka":
            # a topic (and a mock cluster) of its own per Cluster, i.e. per test class
            self.kafka = KafkaMock(self.tmp, "stockpot.e2e.%s.%d" % (name, os.getpid()),
                                   partitions=kafka_partitions)
            env.update(self.kafka.env())
            env["STOCKPOT_KAFKA_TRANSACTIONAL_ID"] = "stockpot-e2e-%s-%d" % (name, os.getpid())
        else:
            env["STOCKPOT_LOG_BACKEND"] = "lmdb"
        if extra_env:
            env.update(extra_env)
        self.env = env
        self.daemons = {k: Daemon(self, k) for k in DAEMONS}

    def __getitem__(self, name):
        return self.daemons[name]

    @property
    def command_port(self):
        return self.ports["command"]

    @property
    def query_port(self):
        return self.ports["query"]

    def replay(self, *args, check=True, timeout=300):
        """Run stockpot-replay with this cluster's config; returns CompletedProcess (text)."""
        p = subprocess.run(
            [binary("stockpot-replay")] + list(args),
            env=self.env,
            capture_output=True,
            timeout=timeout,
            cwd=self.tmp,
        )
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.tool_logs.append("$ stockpot-replay %s  -> %d\n%s" % (" ".join(args), p.returncode, err[-4000:]))
        p = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if check and p.returncode != 0:
            raise AssertionError(
                "stockpot-replay %s exited %d\nstdout:\n%s\nstderr:\n%s"
                % (" ".join(args), p.returncode, out[-4000:], err[-4000:])
            )
        return p

    def migrate(self):
        return self.replay("migrate")

    def start_all(self):
        self.migrate()
        for n in ("command", "projector", "query"):
            self.daemons[n].start(wait=False)
        for n in ("command", "projector", "query"):
            self.daemons[n].wait_ready()

    def log_count(self):
        """Number of events in the log (lines of `stockpot-replay dump`)."""
        out = self.replay("dump").stdout
        return len([l for l in out.splitlines() if l.strip()])

    def sql(self, query):
        return psql(query, dbname=self.dbname)

    def stop_all(self):
        """SIGTERM every running daemon; returns {name: exit code}."""
        codes = {}
        for n in ("query", "projector", "command"):
            d = self.daemons[n]
            if d.alive():
                try:
                    codes[n] = d.stop()
                except AssertionError:
                    codes[n] = "hung"
        return codes

    def dump_logs(self, stream=sys.stderr):
        stream.write("\n===== e2e logs of cluster %s (%s) =====\n" % (self.name, self.tmp))
        for d in self.daemons.values():
            if d.log_paths:
                stream.write(d.log_tail() + "\n")
        for t in self.tool_logs[-10:]:
            stream.write("----- tool -----\n" + t + "\n")
        if self.kafka is not None:
            stream.write("----- stockpot-kafka-mock %s (topic %s, %s) -----\n%s\n"
                         % (self.kafka.bootstrap, self.kafka.topic,
                            "running" if self.kafka.alive() else "exited %s" % self.kafka.proc.returncode,
                            self.kafka.log_tail()))
        stream.flush()

    def cleanup(self):
        for d in self.daemons.values():
            d.kill9()
        if self.kafka is not None:
            self.kafka.stop()
        if os.environ.get("SP_E2E_KEEP"):
            sys.stderr.write("e2e: kept %s and database %s\n" % (self.tmp, self.dbname))
            return
        try:
            psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.dbname, check=False)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Domain helpers


def assert_clean_shutdown(tc, cluster):
    """SIGTERM every daemon of @cluster: each exits 0, and no sanitizer reported anything."""
    codes = cluster.stop_all()
    tc.assertEqual(codes, {"query": 0, "projector": 0, "command": 0})
    for d in ("command", "projector", "query"):
        text = cluster[d].log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            tc.assertNotIn(bad, text, "%s log: %s" % (d, cluster[d].log_tail(60)))


def register_and_login(port, username, password="correct horse battery", email=None):
    """Register a user and log in; returns the login JSON (plus 'register' = register JSON)."""
    email = email or (username + "@example.com")
    r = request(port, "POST", "/auth/register", {"username": username, "email": email, "password": password})
    if r.status != 201:
        raise AssertionError("register %s: %r" % (username, r))
    reg = r.json()
    r = request(port, "POST", "/auth/login", {"username": username, "password": password})
    if r.status != 200:
        raise AssertionError("login %s: %r" % (username, r))
    out = r.json()
    out["register"] = reg
    return out


def recipe_body(rec):
    """The create-recipe body of one sample.jsonl record (only the API's fields)."""
    body = {
        "title": rec["title"],
        "ingredients": rec["ingredients"],
        "steps": rec["steps"],
        "tags": rec.get("tags") or [],
    }
    if rec.get("description"):
        body["description"] = rec["description"]
    return body


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def get_after(port, path, token, deadline_s=120):
    """GET with Stockpot-After, retrying 503 (not applied yet) until deadline_s."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = request(port, "GET", path, headers={"Stockpot-After": token})
        if r.status != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def parse_position(token):
    """(partition, offset) of a consistency token "<partition>:<offset>"."""
    part, off = token.split(":", 1)
    return int(part), int(off)


def furthest_per_partition(tokens):
    """The furthest token of each partition among tokens: {partition: token}. A token
    covers only its own partition (Kafka has several; the embedded log one), so waiting
    for "everything these writes produced" means waiting for each of these."""
    out = {}
    for t in tokens:
        p, o = parse_position(t)
        if p not in out or o > parse_position(out[p])[1]:
            out[p] = t
    return out


def wait_positions(port, tokens, path="/recipes?limit=1", deadline_s=120):
    """GET path with Stockpot-After for the furthest token of each partition among
    tokens, retrying 503 until deadline_s; returns the responses that were not 200."""
    bad = []
    for t in furthest_per_partition(tokens).values():
        r = get_after(port, path, t, deadline_s=deadline_s)
        if r.status != 200:
            bad.append((t, r))
    return bad


def sse_open(port, path, token, last=None):
    """Open the Server-Sent Events stream @path as the bearer of @token (resuming after
    @last with Last-Event-ID); returns (socket, [bytes read past the headers, \r\n as \n])
    for sse_events. The stream's chunked framing is left in: sse_events skips it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" % path
    head += "Authorization: Bearer %s\r\n" % token
    if last:
        head += "Last-Event-ID: %s\r\n" % last
    s.sendall((head + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("stream closed before its headers: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not re.match(rb"^HTTP/1\.1 200", head.split(b"\r\n", 1)[0]):
        raise AssertionError("stream answered %r" % head.split(b"\r\n", 1)[0])
    if b"text/event-stream" not in head.lower():
        raise AssertionError("stream is not text/event-stream: %r" % head)
    return s, [rest.replace(b"\r\n", b"\n")]


def sse_events(s, buf, n, timeout, event=None):
    """Read until n events (dicts: id, event, data as text), of type @event if given, or
    until timeout; returns the events."""
    events = []
    deadline = time.monotonic() + timeout
    while len(events) < n and time.monotonic() < deadline:
        while b"\n\n" in buf[0] and len(events) < n:
            block, buf[0] = buf[0].split(b"\n\n", 1)
            ev = {}
            for line in block.decode().split("\n"):
                if line.startswith("HTTP/") or ":" not in line or line.startswith(":"):
                    continue
                k, v = line.split(":", 1)
                ev[k.strip().lower()] = v.strip()
            if "data" in ev and (event is None or ev.get("event") == event):
                events.append(ev)
        if len(events) >= n:
            break
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf[0] += chunk.replace(b"\r\n", b"\n")
    return events


def wait_until(fn, deadline_s=120, interval_s=0.1):
    """Poll fn() until it returns a true value or deadline_s passes; returns the last value."""
    deadline = time.monotonic() + deadline_s
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval_s)


def list_all_recipes(port, limit=100, after=None, max_pages=1000):
    """Every recipe through GET /recipes cursor pagination (Link rel=next / max_id)."""
    items = []
    path = "/recipes?limit=%d" % limit
    hdrs = {"Stockpot-After": after} if after else None
    for _ in range(max_pages):
        r = request(port, "GET", path, headers=hdrs)
        if r.status != 200:
            raise AssertionError("GET %s: %r" % (path, r))
        page = r.json()["items"]
        items.extend(page)
        if len(page) < limit:
            break
        link = r.header("link")
        if link and "rel=\"next\"" in link:
            path = link.split(">")[0].lstrip("<").strip()
            if path.startswith("http"):
                path = "/" + path.split("/", 3)[3]
        else:
            path = "/recipes?limit=%d&max_id=%s" % (limit, page[-1]["id"])
    return items


# ---------------------------------------------------------------------------
# Runner


def main():
    """unittest.main that prints every daemon's stderr on failure and cleans up."""
    sys.stderr.write("e2e: event log backend %s (SP_E2E_BACKEND)\n" % BACKEND)
    prog = unittest.TestProgram(module="__main__", exit=False, verbosity=2)
    ok = prog.result.wasSuccessful()
    if not ok:
        for c in _CLUSTERS:
            c.dump_logs()
    for c in _CLUSTERS:
        c.cleanup()
    sys.exit(0 if ok else 1)
