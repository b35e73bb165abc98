#!/usr/bin/python3
"""Search benchmark peer: Xapian (Debian python3-xapian), in-process, one thread.

Builds a Xapian index of the recipes JSONL in a temporary directory, then runs every
query of the queries file --repeat times (after one warm-up pass) and prints one JSON
line of results on stdout; the top 10 of each query go to --top FILE as JSON
{query: [line, ...]} (0-based line numbers of the JSONL file, best first).

Index: one document per recipe line (only the lines listed in --lines, when given), its
data the 0-based line number. Fields go through one xapian.TermGenerator (English
Snowball stemmer, STEM_SOME: unstemmed terms with positions plus Z-prefixed stemmed
terms) into the same unprefixed term space, each with its own wdf increment: title 4,
tags 3, ingredients 2, description 1, steps 1 (index_text(text, weight)); the term
position jumps by 100 between fields so that phrases do not span two fields. Xapian's
document length is the sum of the wdfs, so BM25 over these weighted wdfs is BM25F with
those field weights.
Ranking: xapian.BM25Weight with Xapian 1.4's defaults, k1=1, k2=0, k3=1, b=0.5,
min_normlen=0.5 (stated explicitly below and in the output).
Queries: xapian.QueryParser, English stemmer, STEM_SOME, default_op OP_AND, flags
FLAG_PHRASE | FLAG_LOVEHATE | FLAG_PARTIAL (FLAG_PARTIAL: the last word also matches as
a prefix of indexed words, as Stockpot's last query term does; expansion capped at
Xapian's default of the 100 most frequent terms). No FLAG_BOOLEAN: "and"/"or"/"not"
are plain words. Xapian has no typo tolerance at match time (Stockpot has).
Timed per query: parse_query + get_mset(0, 10) + reading the 10 documents' data (their
line numbers), wall clock (time.perf_counter) in this Python process.

usage: peer_xapian.py --data FILE --queries FILE --top OUT.json [--lines FILE]
                      [--repeat K] [--dir DIR] [--keep]
  --lines FILE  index only these 0-based line numbers: the first field of each line
                ("<line>" or "<line>\\t<recipe id>", so import-recipes.py's --id-map
                file works as is); default: every non-blank line
Percentiles are nearest-rank (the smallest latency that at least that share of the
samples does not exceed), as bench_util.c computes them.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import xapian

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import field_text, read_lines_filter, read_queries, report  # noqa: E402

FIELD_WEIGHTS = (("title", 4), ("tags", 3), ("ingredients", 2), ("description", 1),
                 ("steps", 1))
BM25_PARAMS = {"k1": 1.0, "k2": 0.0, "k3": 1.0, "b": 0.5, "min_normlen": 0.5}
TOP_K = 10


def du_bytes(path):
    """Disk usage of a directory tree, as du counts it (allocated blocks)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def build(data, keep, dbdir):
    """Index the recipes of @data (lines in @keep, or all when None) into @dbdir."""
    db = xapian.WritableDatabase(dbdir, xapian.DB_CREATE_OR_OVERWRITE)
    tg = xapian.TermGenerator()
    tg.set_stemmer(xapian.Stem("english"))
    tg.set_stemming_strategy(xapian.TermGenerator.STEM_SOME)
    docs = 0
    with open(data, encoding="utf-8") as f:
        for line_no, row in enumerate(f):
            if not row.strip() or (keep is not None and line_no not in keep):
                continue
            rec = json.loads(row)
            doc = xapian.Document()
            tg.set_document(doc)
            for name, weight in FIELD_WEIGHTS:
                tg.index_text(field_text(rec, name), weight)
                tg.increase_termpos(100)
            doc.set_data(str(line_no))
            db.add_document(doc)
            docs += 1
    db.commit()
    db.close()
    return docs


def make_parser(db):
    qp = xapian.QueryParser()
    qp.set_stemmer(xapian.Stem("english"))
    qp.set_stemming_strategy(xapian.QueryParser.STEM_SOME)
    qp.set_default_op(xapian.Query.OP_AND)
    qp.set_database(db)  # FLAG_PARTIAL expands the prefix against the database's terms
    return qp


FLAGS = (xapian.QueryParser.FLAG_PHRASE | xapian.QueryParser.FLAG_LOVEHATE
         | xapian.QueryParser.FLAG_PARTIAL)


def search(db, qp, enquire, q):
    """Top 10 line numbers of query @q, best first."""
    enquire.set_query(qp.parse_query(q, FLAGS))
    mset = enquire.get_mset(0, TOP_K)
    return [int(m.document.get_data()) for m in mset]


def run_queries(dbdir, queries, repeat):
    db = xapian.Database(dbdir)
    qp = make_parser(db)
    enquire = xapian.Enquire(db)
    p = BM25_PARAMS
    enquire.set_weighting_scheme(
        xapian.BM25Weight(p["k1"], p["k2"], p["k3"], p["b"], p["min_normlen"]))
    top = {q: search(db, qp, enquire, q) for q in queries}  # warm-up pass
    lat = []
    t0 = time.perf_counter()
    for _ in range(repeat):
        for q in queries:
            s = time.perf_counter()
            search(db, qp, enquire, q)
            lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    db.close()
    return top, lat, wall


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Xapian peer of the Stockpot search benchmark.")
    ap.add_argument("--data", required=True, help="recipes JSONL, read in place")
    ap.add_argument("--queries", required=True, help="one query a line")
    ap.add_argument("--top", required=True, help="write {query: [line, ...]} here")
    ap.add_argument("--lines", help="index only these 0-based line numbers (default: all)")
    ap.add_argument("--repeat", type=int, default=10, help="timed passes (default 10)")
    ap.add_argument("--dir", help="parent of the temporary index directory")
    ap.add_argument("--keep", action="store_true", help="keep the index directory")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    return a


def main(argv):
    a = parse_args(argv)
    keep = read_lines_filter(a.lines) if a.lines else None
    queries = read_queries(a.queries)
    tmp = tempfile.mkdtemp(prefix="sp-xapian.", dir=a.dir)
    dbdir = os.path.join(tmp, "db")
    try:
        t0 = time.perf_counter()
        docs = build(a.data, keep, dbdir)
        build_s = time.perf_counter() - t0
        index_bytes = du_bytes(dbdir)
        top, lat, wall = run_queries(dbdir, queries, a.repeat)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report(a.top, queries, top, lat, wall, {
        "engine": "xapian",
        "conditions": "Xapian %s in-process from Python, 1 thread" % xapian.version_string(),
        "docs": docs,
        "build_s": round(build_s, 3),
        "index_bytes": index_bytes,
        "repeat": a.repeat,
        "bm25": BM25_PARAMS,
        "query_flags": "FLAG_PHRASE|FLAG_LOVEHATE|FLAG_PARTIAL, OP_AND, STEM_SOME",
        "index_dir": dbdir if a.keep else None,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
