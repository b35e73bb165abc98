#!/usr/bin/env python3
"""GET load tool for bench-social.sh (Python 3 stdlib): --connections keep-alive
connections, one process each (no GIL between them), each looping over its share of the
given paths (and bearer tokens) for --duration-s seconds; prints requests/s, p50/p99/max
latency and the status classes.

usage: bench-get.py --port N --paths FILE [--connections 16] [--duration-s 10]
  FILE: one request a line, "<path>" or "<path>\\t<bearer token>".
Note: the client shares the machine's cores with the daemons (loopback benchmark), so the
figures are a lower bound of what the server sustains.
"""

import argparse
import http.client
import multiprocessing
import sys
import time


def worker(port, reqs, duration_s, out):
    lat, codes, fail = [], {}, 0
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    end = time.monotonic() + duration_s
    i = 0
    while time.monotonic() < end:
        path, tok = reqs[i % len(reqs)]
        i += 1
        hdrs = {"Authorization": "Bearer " + tok} if tok else {}
        t0 = time.perf_counter()
        try:
            c.request("GET", path, headers=hdrs)
            r = c.getresponse()
            r.read()
        except (http.client.HTTPException, OSError):
            fail += 1
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        lat.append(time.perf_counter() - t0)
        k = "%dxx" % (r.status // 100)
        codes[k] = codes.get(k, 0) + 1
    c.close()
    out.put((lat, codes, fail))


def pct(sorted_lat, p):
    if not sorted_lat:
        return float("nan")
    return sorted_lat[min(len(sorted_lat) - 1, int(p / 100.0 * len(sorted_lat)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--paths", required=True)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration-s", type=float, default=10)
    ap.add_argument("--label", default="GET")
    a = ap.parse_args()
    reqs = []
    with open(a.paths) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                p, _, t = line.partition("\t")
                reqs.append((p, t or None))
    out = multiprocessing.Queue()
    procs = []
    for k in range(a.connections):
        share = reqs[k::a.connections] or reqs
        procs.append(multiprocessing.Process(target=worker, args=(a.port, share, a.duration_s, out)))
    t0 = time.monotonic()
    for p in procs:
        p.start()
    lat, codes, fail = [], {}, 0
    for _ in procs:
        l, c, f = out.get()
        lat.extend(l)
        fail += f
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    for p in procs:
        p.join()
    dt = time.monotonic() - t0
    lat.sort()
    print("%-16s %7d requests in %.1f s: %8.0f req/s  p50 %.2f ms  p99 %.2f ms  max %.2f ms  %s%s"
          % (a.label, len(lat), dt, len(lat) / dt, pct(lat, 50) * 1e3, pct(lat, 99) * 1e3,
             (lat[-1] if lat else float("nan")) * 1e3, " ".join("%s=%d" % kv for kv in sorted(codes.items())),
             " failed=%d" % fail if fail else ""))
    return 0 if not fail and set(codes) == {"2xx"} else 1


if __name__ == "__main__":
    sys.exit(main())
