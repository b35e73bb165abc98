#!/usr/bin/env python3
"""Import recipes from a JSONL file into Stockpot through the HTTP write API.

Each line is one recipe record (deploy/data/README.md describes the format); the
importer sends its title, description, ingredients, steps and tags to POST /recipes as
the importer user, over several keep-alive connections in parallel. Every request
carries an Idempotency-Key derived from (source, source_id), so rerunning the import
after a crash or an interruption does not create duplicates.

The importer user is registered on first use and logged in afterwards. Its password
comes from STOCKPOT_IMPORT_PASSWORD; the built-in default is for local development
only.

With --id-map FILE, the importer also writes FILE: one line "<line>\t<recipe_id>" for
every recipe the write API created (or answered again on an idempotent replay), <line>
being the 0-based line number of the record in the JSONL file, sorted by line. It is
written at the end, also after a failure (then it lists the recipes created so far).

Exit status: 0 when every recipe was accepted, 1 on any failure (the problem+json
detail is printed), 2 on bad arguments.

Python 3 standard library only.
"""

import argparse
import hashlib
import http.client
import json
import re
import os
import queue
import sys
import threading
import time
import urllib.parse

DEV_PASSWORD = "dev-only-importer-pw"  # local development only; set STOCKPOT_IMPORT_PASSWORD
MAX_TAGS = 30  # API limit (README "Field rules")
RETRYABLE = (429, 502, 503, 504)
MAX_ATTEMPTS = 8


class ImportError_(Exception):
    """A failure that stops the import; str() is the message for the user."""


def describe_problem(status, body):
    """Render an HTTP error answer (problem+json when possible) as one readable string."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "HTTP %d: %s" % (status, body[:500].decode("utf-8", "replace"))
    if not isinstance(doc, dict):
        return "HTTP %d: %s" % (status, doc)
    text = "HTTP %d %s: %s" % (status, doc.get("title", ""), doc.get("detail", ""))
    for err in doc.get("errors") or []:
        if isinstance(err, dict):
            text += "\n    field %s: %s" % (err.get("field"), err.get("detail"))
    return text


class Client:
    """One keep-alive HTTP/1.1 connection to the command API (one per thread)."""

    def __init__(self, base, timeout_s):
        url = urllib.parse.urlsplit(base)
        if url.scheme != "http" or not url.hostname:
            raise ImportError_("only http://host:port URLs are supported: %r" % base)
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.timeout_s = timeout_s
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Send one request; returns (status, headers dict lower-cased, body bytes).

        A dropped keep-alive connection is reopened and the request sent once more
        (safe: every POST here is idempotent by key or by nature).
        """
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                rh = {k.lower(): v for k, v in resp.getheaders()}
                if rh.get("connection", "").lower() == "close":
                    self.close()
                return resp.status, rh, payload
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise ImportError_("%s %s: connection failed: %s" % (method, path, exc))
        raise AssertionError("unreachable")


class Session:
    """The importer user's tokens, shared by all threads; refreshed on 401."""

    def __init__(self, base, username, email, password, timeout_s):
        self.client = Client(base, timeout_s)
        self.username = username
        self.email = email
        self.password = password
        self.lock = threading.Lock()
        self.access = None
        self.refresh = None
        self.generation = 0

    def _post(self, path, body):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            status, headers, payload = self.client.request("POST", path, body)
            if status in RETRYABLE and attempt < MAX_ATTEMPTS:
                time.sleep(retry_after_s(headers, attempt))
                continue
            return status, payload
        raise AssertionError("unreachable")

    def _take(self, payload):
        doc = json.loads(payload)
        self.access = doc["access_token"]
        self.refresh = doc["refresh_token"]
        self.generation += 1

    def _login(self):
        status, payload = self._post(
            "/auth/login", {"username": self.username, "password": self.password})
        if status != 200:
            raise ImportError_("login as %s failed: %s" % (self.username, describe_problem(status, payload)))
        self._take(payload)

    def start(self):
        """Register the importer user if needed, then log in."""
        with self.lock:
            status, payload = self._post(
                "/auth/register",
                {"username": self.username, "email": self.email, "password": self.password})
            if status == 201:
                print("import: registered user %s" % self.username, flush=True)
            elif status != 409:
                raise ImportError_("register %s failed: %s" % (self.username, describe_problem(status, payload)))
            self._login()

    def token(self):
        with self.lock:
            return self.access, self.generation

    def renew(self, seen_generation):
        """Called after a 401: refresh the token unless another thread already did."""
        with self.lock:
            if self.generation != seen_generation:
                return
            status, payload = self._post("/auth/refresh", {"refresh_token": self.refresh})
            if status == 200:
                self._take(payload)
            else:
                self._login()  # refresh token expired or session revoked: start over


def retry_after_s(headers, attempt):
    try:
        return min(max(float(headers.get("retry-after", "")), 0.05), 10.0)
    except ValueError:
        return min(0.1 * (2 ** attempt), 5.0)


def clean_text(text, multiline):
    """Make source text acceptable to the API's character rule: no control characters
    except \n and \t in multi-line fields. C1 controls (U+0080-U+009F) in the sources are
    Windows-1252 bytes decoded as Latin-1 (e.g. U+0096 for an en dash): map them back;
    other control characters become a space (or are dropped: DEL, undefined C1)."""
    if text.isprintable() and "\x7f" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch if multiline else " ")
        elif code < 0x20:
            out.append(" ")
        elif code == 0x7F:
            continue
        elif 0x80 <= code <= 0x9F:
            try:
                out.append(bytes([code]).decode("cp1252"))
            except UnicodeDecodeError:
                continue
        else:
            out.append(ch)
    return "".join(out)


def recipe_body(rec):
    """The POST /recipes body for one record, and whether it had to be adjusted (tags
    trimmed to the API's limit or control characters replaced)."""
    tags = list(rec.get("tags") or [])
    body = {
        "title": clean_text(rec["title"], False),
        "description": clean_text(rec.get("description") or "", True),
        "ingredients": [clean_text(x, False) for x in rec["ingredients"]],
        "steps": [clean_text(x, True) for x in rec["steps"]],
        "tags": [clean_text(x, False) for x in tags[:MAX_TAGS]],
    }
    lang = (rec.get("lang") or "").split("-")[0].lower()
    if re.fullmatch(r"[a-z]{2,3}", lang):
        body["language"] = lang  # BCP 47 primary subtag: the search view's stemmer
    changed = len(tags) > MAX_TAGS or body["title"] != rec["title"] \
        or body["description"] != (rec.get("description") or "") \
        or body["ingredients"] != rec["ingredients"] or body["steps"] != rec["steps"] \
        or body["tags"] != tags
    return body, changed


def idempotency_key(rec):
    ident = "%s\0%s" % (rec.get("source", ""), rec.get("source_id", ""))
    return "import-" + hashlib.sha256(ident.encode("utf-8")).hexdigest()


def position_key(token):
    """(partition, offset) of an opaque position token like "0:123" (best effort)."""
    try:
        part, off = token.split(":", 1)
        return (int(part), int(off))
    except (AttributeError, ValueError):
        return (-1, -1)


class Importer:
    def __init__(self, args, session):
        self.args = args
        self.session = session
        self.work = queue.Queue(maxsize=args.workers * 64)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.trimmed = 0
        self.failure = None
        # partition -> (offset, position token, recipe id) of the furthest recipe there:
        # a consistency token covers one partition (Kafka has several, LMDB one)
        self.last_by_partition = {}
        # (0-based line number, recipe id) of every recipe created, for --id-map
        self.ids = []

    def fail(self, message):
        with self.lock:
            if self.failure is None:
                self.failure = message
        self.stop.set()

    def post_one(self, client, lineno, rec):
        body, trimmed = recipe_body(rec)
        key = idempotency_key(rec)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            access, gen = self.session.token()
            status, headers, payload = client.request(
                "POST", "/recipes", body,
                {"Authorization": "Bearer " + access, "Idempotency-Key": key})
            if status == 201:
                doc = json.loads(payload)
                with self.lock:
                    self.done += 1
                    self.trimmed += trimmed
                    pos = doc.get("position") or headers.get("stockpot-position")
                    part, off = position_key(pos)
                    last = self.last_by_partition.get(part)
                    if pos and (last is None or off >= last[0]):
                        self.last_by_partition[part] = (off, pos, doc.get("recipe_id"))
                    if self.args.id_map and doc.get("recipe_id") is not None:
                        self.ids.append((lineno - 1, doc["recipe_id"]))
                return
            if status == 401 and attempt < MAX_ATTEMPTS:
                self.session.renew(gen)
                continue
            if status in RETRYABLE and attempt < MAX_ATTEMPTS:
                time.sleep(retry_after_s(headers, attempt))
                continue
            raise ImportError_("line %d (%s %s, %r): %s" % (
                lineno, rec.get("source"), rec.get("source_id"), rec.get("title"),
                describe_problem(status, payload)))

    def worker(self):
        client = Client(self.args.url, self.args.timeout)
        try:
            while True:
                item = self.work.get()
                if item is None:
                    return
                if self.stop.is_set():
                    continue  # keep draining so that the feeder never blocks
                try:
                    self.post_one(client, *item)
                except ImportError_ as exc:
                    self.fail(str(exc))
                except Exception as exc:  # report, never hang the queue
                    self.fail("line %d: %s: %s" % (item[0], type(exc).__name__, exc))
        finally:
            client.close()

    def feed(self, path, total):
        """Read the file and queue its records; prints progress while it goes."""
        started = time.monotonic()
        next_report = started + 2.0
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if self.stop.is_set():
                    break
                if not line.strip():
                    continue
                if self.args.limit and lineno > self.args.limit:
                    break
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    self.fail("%s:%d: not JSON: %s" % (path, lineno, exc))
                    break
                while not self.stop.is_set():
                    try:
                        self.work.put((lineno, rec), timeout=0.2)
                        break
                    except queue.Full:
                        pass
                now = time.monotonic()
                if now >= next_report:
                    self.report(total, started)
                    next_report = now + 2.0

    def report(self, total, started):
        elapsed = max(time.monotonic() - started, 1e-6)
        print("import: %d/%d recipes (%.0f/s)" % (self.done, total, self.done / elapsed), flush=True)


def write_id_map(path, ids):
    """Write "<0-based line>\t<recipe_id>" lines, sorted by line, replacing @path whole."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line, recipe_id in sorted(ids):
            f.write("%d\t%s\n" % (line, recipe_id))
    os.replace(tmp, path)


def count_lines(path, limit):
    with open(path, "rb") as f:
        n = sum(1 for line in f if line.strip())
    return min(n, limit) if limit else n


def wait_visible(args, importer):
    """Ask the query API for the furthest recipe of each log partition with Stockpot-After
    (read-your-writes; a token covers its own partition only)."""
    if not args.query_url or not importer.last_by_partition:
        return
    client = Client(args.query_url, args.timeout)
    try:
        for _, pos, recipe_id in sorted(importer.last_by_partition.values(), key=lambda x: x[1]):
            wait_one(client, pos, recipe_id)
    finally:
        client.close()


def wait_one(client, pos, recipe_id):
    for _ in range(30):
        status, headers, payload = client.request(
            "GET", "/recipes/%s" % recipe_id, headers={"Stockpot-After": pos})
        if status == 200:
            print("import: projected up to position %s" % pos, flush=True)
            return
        if status not in RETRYABLE:
            break
        time.sleep(retry_after_s(headers, 1))
    raise ImportError_("query API did not show recipe %s: %s" % (
        recipe_id, describe_problem(status, payload)))


def parse_args(argv):
    p = argparse.ArgumentParser(description="Import JSONL recipes through the Stockpot write API.")
    p.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "data", "sample.jsonl"),
                   help="JSONL file of recipes (default: deploy/data/sample.jsonl)")
    p.add_argument("--url", default=os.environ.get("STOCKPOT_COMMAND_URL", "http://127.0.0.1:8080"),
                   help="command-api base URL (default: %(default)s)")
    p.add_argument("--query-url", default=os.environ.get("STOCKPOT_QUERY_URL", ""),
                   help="query-api base URL; when set, wait until the import is visible there")
    p.add_argument("--username", default=os.environ.get("STOCKPOT_IMPORT_USER", "sample_importer"))
    p.add_argument("--email", default=None, help="default: <username>@importer.invalid")
    p.add_argument("--workers", type=int, default=8, help="parallel connections (default 8)")
    p.add_argument("--limit", type=int, default=0, help="import only the first N lines")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    p.add_argument("--id-map", default=None, metavar="FILE",
                   help="write '<0-based line>\\t<recipe_id>' per recipe created to FILE")
    args = p.parse_args(argv)
    if args.workers < 1 or args.workers > 256:
        p.error("--workers must be 1..256")
    if args.email is None:
        args.email = args.username + "@importer.invalid"
    return args


def main(argv):
    args = parse_args(argv)
    password = os.environ.get("STOCKPOT_IMPORT_PASSWORD", DEV_PASSWORD)
    if not os.path.isfile(args.data):
        print("import: no such file: %s" % args.data, file=sys.stderr)
        return 2
    total = count_lines(args.data, args.limit)
    print("import: %d recipes from %s to %s with %d connections"
          % (total, args.data, args.url, args.workers), flush=True)
    started = time.monotonic()
    try:
        session = Session(args.url, args.username, args.email, password, args.timeout)
        session.start()
        importer = Importer(args, session)
        threads = [threading.Thread(target=importer.worker, daemon=True) for _ in range(args.workers)]
        for t in threads:
            t.start()
        try:
            importer.feed(args.data, total)
        except BaseException:
            importer.stop.set()
            raise
        finally:
            for _ in threads:
                importer.work.put(None)
            for t in threads:
                t.join()
            if args.id_map:
                write_id_map(args.id_map, importer.ids)
        session.client.close()
        if importer.failure:
            raise ImportError_(importer.failure)
        wait_visible(args, importer)
    except ImportError_ as exc:
        print("import: FAILED: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("import: interrupted (rerun to resume; idempotency keys prevent duplicates)", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    print("import: done: %d recipes in %.1f s (%.0f/s)%s" % (
        importer.done, elapsed, importer.done / max(elapsed, 1e-6),
        "; %d recipes adjusted (tags trimmed to %d, control characters replaced)"
        % (importer.trimmed, MAX_TAGS) if importer.trimmed else ""),
        flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
