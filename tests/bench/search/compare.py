#!/usr/bin/env python3
"""Prints the search benchmark's table from the engines' stats and top-10 files.

usage: compare.py [--ref ENGINE] [--worst N] STATS.json...
  STATS.json  one engine run: a JSON object on one line (the last such line of the file
              counts, so a peer's stdout can be saved as it is) with the fields
                engine, conditions, build_s, index_bytes, qps, p50_ms, p99_ms, top
              where top is the path of a {query: [line, ...]} file (0-based JSONL line
              numbers, best first). Any figure may be null (shown as "-"). Several files
              may name the same engine (e.g. Stockpot under two load conditions).
  --ref ENGINE  the engine whose top 10 the others are compared with and whose q/s is
              divided by the others' (default: the engine of the first file); "stockpot"
              in run-search-bench.sh. Any two peers can be compared this way too.
  --worst N   also list the N queries with the lowest overlap per compared engine

Overlap of two top-10 lists A (reference) and B for one query, as used in the table:
  |A ∩ B| / max(|A|, |B|)
i.e. the standard |A ∩ B| / 10 whenever either engine returns 10 hits; 1.0 when both
return the same fewer-than-10 documents; 0 when exactly one of them finds nothing.
Queries where neither finds anything are left out of the mean (their count is shown),
as are queries missing from either file. The column is the mean over the rest.
Standard library only.
"""

import argparse
import json
import sys

COLUMNS = ("engine", "conditions", "build s", "index MB", "q/s", "p50 ms", "p99 ms",
           "overlap with %s top-10")


def load_stats(path):
    with open(path, encoding="utf-8") as f:
        rows = f.read().splitlines()
    for row in reversed(rows):
        if not row.startswith("{"):
            continue
        try:
            doc = json.loads(row)
        except ValueError:
            continue
        if isinstance(doc, dict) and "engine" in doc:
            return doc
    sys.exit("compare.py: %s: no line holds an engine's stats object" % path)


def load_top(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {q: [int(x) for x in v][:10] for q, v in doc.items()}


def overlap(a, b):
    """Overlap of two top lists, or None when both are empty (see the module doc)."""
    if not a and not b:
        return None
    return len(set(a) & set(b)) / max(len(a), len(b))


def compare_tops(ref, other):
    """(mean overlap or None, compared, both empty, exactly one empty, missing from one file,
    per-query list)."""
    per = []
    both_empty = one_empty = 0
    missing = len(set(ref) ^ set(other))
    for q in ref:
        if q not in other:
            continue
        o = overlap(ref[q], other[q])
        if o is None:
            both_empty += 1
            continue
        if not ref[q] or not other[q]:
            one_empty += 1
        per.append((o, q))
    mean = sum(o for o, _ in per) / len(per) if per else None
    return mean, len(per), both_empty, one_empty, missing, per


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main(argv):
    ap = argparse.ArgumentParser(description="Table of the search benchmark.")
    ap.add_argument("--ref", help="reference engine (default: the first file's)")
    ap.add_argument("--worst", type=int, default=0, help="list the N lowest-overlap queries")
    ap.add_argument("stats", nargs="+", help="stats JSON files")
    a = ap.parse_args(argv)
    runs = [load_stats(p) for p in a.stats]
    ref = a.ref or runs[0]["engine"]
    ref_runs = [r for r in runs if r["engine"] == ref]
    if not ref_runs:
        sys.exit("compare.py: no stats for reference engine %r" % ref)
    ref_top_path = next((r.get("top") for r in ref_runs if r.get("top")), None)
    ref_top = load_top(ref_top_path) if ref_top_path else None

    rows = [[c % ref if "%s" in c else c for c in COLUMNS]]
    notes = []
    for r in runs:
        ov = "-"
        if r["engine"] == ref:
            ov = "(reference)"
        elif ref_top is not None and r.get("top"):
            mean, n, both, one, missing, per = compare_tops(ref_top, load_top(r["top"]))
            ov = "%s (%d queries)" % (fmt(mean, ".3f"), n)
            notes.append("%s vs %s: %d queries compared, %d left out (no hits in either), "
                         "%d with hits in only one%s" % (
                             r["engine"], ref, n, both, one,
                             ", %d in only one of the files" % missing if missing else ""))
            if a.worst > 0:
                for o, q in sorted(per)[:a.worst]:
                    notes.append("    %.2f  %s" % (o, q))
        mb = None if r.get("index_bytes") is None else r["index_bytes"] / 1e6
        rows.append([r["engine"], r.get("conditions") or "-", fmt(r.get("build_s"), ".2f"),
                     fmt(mb, ".1f"), fmt(r.get("qps"), ",.0f"), fmt(r.get("p50_ms"), ".3f"),
                     fmt(r.get("p99_ms"), ".3f"), ov])
    print(table(rows))
    print()
    print("overlap = mean over queries of |A ∩ B| / max(|A|, |B|) with A = %s's top 10, "
          "B = the engine's (queries with no hits in either left out)" % ref)
    for n in notes:
        print(n)
    for rr in ref_runs:
        for r in runs:
            if r["engine"] == ref or not r.get("qps") or not rr.get("qps"):
                continue
            print("%s q/s / %s q/s = %.3g   (%s: %s; %s: %s)" % (
                ref, r["engine"], rr["qps"] / r["qps"], ref, rr.get("conditions") or "-",
                r["engine"], r.get("conditions") or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
