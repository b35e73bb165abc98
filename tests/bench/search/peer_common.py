"""What both search benchmark peers (peer_xapian.py, peer_pg.py) read and compute alike:
the --lines filter, the queries file, a recipe field as text, nearest-rank percentiles."""


def read_lines_filter(path):
    """The set of 0-based line numbers listed in @path (first field of each line)."""
    keep = set()
    with open(path, encoding="utf-8") as f:
        for row in f:
            fields = row.split()
            if fields:
                keep.add(int(fields[0]))
    return keep


def read_queries(path):
    with open(path, encoding="utf-8") as f:
        return [q.strip() for q in f if q.strip()]


def field_text(rec, name):
    """A recipe field as one text: list items joined by newlines."""
    v = rec.get(name) or ""
    return "\n".join(v) if isinstance(v, list) else v


def pct_ms(sorted_s, pct):
    """Nearest-rank percentile of ascending latencies in seconds, in ms (as bench_util.c
    computes them: the smallest latency that at least pct % of the samples do not exceed)."""
    if not sorted_s:
        return 0.0
    k = min(max((pct * len(sorted_s) + 99) // 100, 1), len(sorted_s))
    return sorted_s[k - 1] * 1000.0


def report(top_path, queries, top, lat, wall, stats):
    """Write the top-10s to @top_path (JSON {query: [line, ...]}) and print one JSON line:
    @stats (engine, conditions, build figures...) plus the figures every peer reports,
    from the per-query latencies @lat (seconds) over @wall seconds."""
    import json
    import os

    with open(top_path, "w", encoding="utf-8") as f:
        json.dump(top, f, indent=0)
    lat = sorted(lat)
    out = dict(stats)
    out.update({
        "queries": len(queries),
        "qps": round(len(lat) / wall, 1),
        "p50_ms": round(pct_ms(lat, 50), 4),
        "p99_ms": round(pct_ms(lat, 99), 4),
        "max_ms": round(lat[-1] * 1000.0, 4) if lat else 0.0,
        "no_hits": [q for q in queries if not top[q]],
        "top": os.path.abspath(top_path),
    })
    print(json.dumps(out), flush=True)
