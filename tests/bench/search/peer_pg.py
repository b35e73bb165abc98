#!/usr/bin/python3
"""Search benchmark peer: PostgreSQL full-text search (Debian python3-psycopg2).

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE, ... as
pg_virtualenv sets them: the unix socket of a throwaway cluster), loads the recipes JSONL
into a fresh table, indexes it, then runs every query of the queries file --repeat times
(after one warm-up pass) and prints one JSON line of results on stdout; the top 10 of
each query go to --top FILE as JSON {query: [line, ...]} (0-based line numbers of the
JSONL file, best first).

Table: TABLE (line int, title, tags, ingredients, description, steps text; list fields
joined with newlines) plus a stored generated column
  tsv = setweight(to_tsvector('english', title), 'A')
     || setweight(to_tsvector('english', tags), 'B')
     || setweight(to_tsvector('english', ingredients), 'C')
     || setweight(to_tsvector('english', description || steps), 'D')
filled by COPY (only the lines listed in --lines, when given), then a GIN index on tsv and
ANALYZE. Build time = COPY (with the tsvector computation) + CREATE INDEX + ANALYZE, as
seen by this client; size = pg_total_relation_size(TABLE): heap, TOAST and the GIN index,
so it includes the recipe texts (also reported: the GIN index alone).
Query (one round trip, psycopg2's client-side parameters, so parsed and planned each
time; autocommit):
  SELECT line FROM TABLE, websearch_to_tsquery('english', %s) q WHERE tsv @@ q
  ORDER BY ts_rank_cd('{0.25,0.5,0.75,1.0}', tsv, q) DESC, line LIMIT 10
The weights array is {D, C, B, A}, i.e. 1:2:3:4 for description+steps : ingredients :
tags : title, approximating Stockpot's field weights (title 4, tags 3, ingredients 2,
description 1, steps 1). ts_rank_cd is cover density ranking, not BM25 (no IDF, no
length normalisation with the default normalization 0); "line" breaks ties so that the
top 10 is deterministic. websearch_to_tsquery ANDs the terms and has no prefix matching:
the last term is NOT a prefix here (Stockpot's and Xapian's is), and no typo tolerance.
Timed per query: execute + fetchall, from this Python process over the unix socket on
one connection, wall clock (time.perf_counter).

usage: peer_pg.py --data FILE --queries FILE --top OUT.json [--lines FILE] [--repeat K]
                  [--table NAME] [--keep]
  --lines FILE  index only these 0-based line numbers: the first field of each line
                ("<line>" or "<line>\\t<recipe id>", so import-recipes.py's --id-map
                file works as is); default: every non-blank line
Run it inside a throwaway cluster: pg_virtualenv -t -- python3 peer_pg.py ...
Percentiles are nearest-rank, as bench_util.c computes them.
"""

import argparse
import csv
import io
import json
import os
import re
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import field_text, read_lines_filter, read_queries, report  # noqa: E402

TOP_K = 10
RANK_WEIGHTS = "{0.25,0.5,0.75,1.0}"  # D, C, B, A


def pg_text(rec, name):
    return field_text(rec, name).replace("\x00", " ")  # PostgreSQL text cannot hold NUL


def csv_rows(data, keep):
    """The recipes as one CSV text (every field quoted: "" is an empty string, not NULL)."""
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    n = 0
    with open(data, encoding="utf-8") as f:
        for line_no, row in enumerate(f):
            if not row.strip() or (keep is not None and line_no not in keep):
                continue
            rec = json.loads(row)
            w.writerow([line_no] + [pg_text(rec, k) for k in
                                    ("title", "tags", "ingredients", "description", "steps")])
            n += 1
    out.seek(0)
    return out, n


def build(cur, table, data, keep):
    """Create, fill and index @table; returns (docs, build seconds, phase seconds)."""
    cur.execute("DROP TABLE IF EXISTS %s" % table)
    cur.execute("""
        CREATE TABLE %s (
            line int PRIMARY KEY,
            title text NOT NULL, tags text NOT NULL, ingredients text NOT NULL,
            description text NOT NULL, steps text NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', title), 'A') ||
                setweight(to_tsvector('english', tags), 'B') ||
                setweight(to_tsvector('english', ingredients), 'C') ||
                setweight(to_tsvector('english', description || ' ' || steps), 'D')) STORED)
        """ % table)
    t0 = time.perf_counter()
    rows, docs = csv_rows(data, keep)
    cur.copy_expert("COPY %s (line, title, tags, ingredients, description, steps) "
                    "FROM STDIN WITH (FORMAT csv)" % table, rows)
    t1 = time.perf_counter()
    cur.execute("CREATE INDEX %s_tsv ON %s USING gin (tsv)" % (table, table))
    t2 = time.perf_counter()
    cur.execute("ANALYZE %s" % table)
    t3 = time.perf_counter()
    return docs, t3 - t0, {"load_s": round(t1 - t0, 3), "gin_s": round(t2 - t1, 3),
                           "analyze_s": round(t3 - t2, 3)}


def run_queries(cur, table, queries, repeat):
    sql = ("SELECT line FROM %s, websearch_to_tsquery('english', %%s) q WHERE tsv @@ q "
           "ORDER BY ts_rank_cd('%s', tsv, q) DESC, line LIMIT %d" % (table, RANK_WEIGHTS, TOP_K))
    top = {}
    for q in queries:  # warm-up pass
        cur.execute(sql, (q,))
        top[q] = [r[0] for r in cur.fetchall()]
    lat = []
    t0 = time.perf_counter()
    for _ in range(repeat):
        for q in queries:
            s = time.perf_counter()
            cur.execute(sql, (q,))
            cur.fetchall()
            lat.append(time.perf_counter() - s)
    return top, lat, time.perf_counter() - t0


def server_facts(cur):
    cur.execute("SELECT current_setting('server_version'), current_setting('shared_buffers'), "
                "current_setting('jit'), current_setting('work_mem')")
    v, sb, jit, wm = cur.fetchone()
    return {"server_version": v, "shared_buffers": sb, "jit": jit, "work_mem": wm}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PostgreSQL peer of the Stockpot search benchmark.")
    ap.add_argument("--data", required=True, help="recipes JSONL, read in place")
    ap.add_argument("--queries", required=True, help="one query a line")
    ap.add_argument("--top", required=True, help="write {query: [line, ...]} here")
    ap.add_argument("--lines", help="index only these 0-based line numbers (default: all)")
    ap.add_argument("--repeat", type=int, default=10, help="timed passes (default 10)")
    ap.add_argument("--table", default="bench_search_recipes", help="table to (re)create")
    ap.add_argument("--keep", action="store_true", help="keep the table afterwards")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", a.table):
        ap.error("--table must be a plain lower-case identifier")
    return a


def main(argv):
    a = parse_args(argv)
    keep = read_lines_filter(a.lines) if a.lines else None
    queries = read_queries(a.queries)
    conn = psycopg2.connect("")  # libpq environment (PG* variables)
    conn.autocommit = True
    cur = conn.cursor()
    facts = server_facts(cur)
    docs, build_s, phases = build(cur, a.table, a.data, keep)
    cur.execute("SELECT pg_total_relation_size(%s), pg_relation_size(%s)",
                (a.table, a.table + "_tsv"))
    total_bytes, gin_bytes = cur.fetchone()
    top, lat, wall = run_queries(cur, a.table, queries, a.repeat)
    if not a.keep:
        cur.execute("DROP TABLE %s" % a.table)
    conn.close()
    report(a.top, queries, top, lat, wall, {
        "engine": "postgresql",
        "conditions": "PostgreSQL %s from Python (psycopg2), unix socket, 1 connection"
                      % facts["server_version"].split()[0],
        "docs": docs,
        "build_s": round(build_s, 3),
        "build_phases": phases,
        "index_bytes": total_bytes,
        "gin_bytes": gin_bytes,
        "repeat": a.repeat,
        "rank": "ts_rank_cd('%s', tsv, websearch_to_tsquery('english', q))" % RANK_WEIGHTS,
        "server": facts,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
