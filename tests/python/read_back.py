"""Reads databases that Waymark wrote with LangGraph's own savers and resumes graphs from them.

Usage:
    python read_back.py --dir DIR [--pg-url URL]

DIR is what the Rust test `waymark_writes_databases_langgraph_can_read` left behind
(WAYMARK_LANGGRAPH_OUT): `rust_written.db`, `rust_expected_sqlite.json`, and when PostgreSQL
was available `rust_postgres_schema.txt` and `rust_expected_postgres.json`.

For each database:
  1. `saver.list(None)` must return exactly the tuples Waymark says it wrote (ids, parents,
     metadata, every channel value and pending write as LangGraph re-serializes it, decoded
     messages);
  2. the agent graph resumes with `Command(resume="yes")` from the interrupted checkpoint that
     Waymark copied, and runs to its end;
  3. the echo graph continues from the input checkpoint Waymark authored itself (with a
     message Waymark encoded) and answers it.
Exits non-zero on the first difference. The PostgreSQL schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_fixtures import (  # noqa: E402
    build_agent_graph,
    build_echo_graph,
    pg_connect,
    tuple_json,
)
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402
from langgraph.types import Command  # noqa: E402

CHECKPOINT_KEYS = ["v", "id", "ts", "channel_values", "channel_versions", "versions_seen", "updated_channels", "extra"]
TUPLE_KEYS = ["thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "metadata",
              "pending_writes", "messages", "write_messages"]


class Mismatch(Exception):
    pass


def compare(saver, expected: dict, label: str) -> tuple[int, int]:
    got = [tuple_json(saver.serde, t) for t in saver.list(None)]
    want = expected["tuples"]
    if len(got) != len(want):
        raise Mismatch(f"{label}: LangGraph lists {len(got)} checkpoints, Waymark wrote {len(want)}")
    writes = 0
    for g, w in zip(got, want):
        for key in TUPLE_KEYS:
            if g[key] != w[key]:
                raise Mismatch(f"{label}: checkpoint {w['checkpoint_id']}: {key}: LangGraph {g[key]!r} != Waymark {w[key]!r}")
        for key in CHECKPOINT_KEYS:
            if g["checkpoint"][key] != w["checkpoint"][key]:
                raise Mismatch(
                    f"{label}: checkpoint {w['checkpoint_id']}: checkpoint.{key}: "
                    f"LangGraph {g['checkpoint'][key]!r} != Waymark {w['checkpoint'][key]!r}"
                )
        writes += len(w["pending_writes"])
    return len(got), writes


def resume(saver, expected: dict, label: str) -> int:
    target = expected["resume"]["interrupted"]
    graph = build_agent_graph(saver)
    cfg = {"configurable": {"thread_id": target["thread_id"], "checkpoint_id": target["checkpoint_id"]}}
    state = graph.get_state(cfg)
    if state.next != ("approve",) or not state.interrupts:
        raise Mismatch(f"{label}: the copied checkpoint is not waiting at the interrupt: next={state.next}")
    result = graph.invoke(Command(resume="yes"), cfg)
    last = result["messages"][-1]
    if last.id != "summary-1" or not result.get("approved"):
        raise Mismatch(f"{label}: resuming the Waymark-written interrupt ended with {last!r}")
    echo = expected["resume"]["echo"]
    echo_graph = build_echo_graph(saver, interrupt_before=False)
    echo_cfg = {"configurable": {"thread_id": echo["thread_id"]}}
    before = echo_graph.get_state(echo_cfg)
    if before.next != ("echo",):
        raise Mismatch(f"{label}: the Waymark-authored checkpoint does not schedule echo: {before.next}")
    out = echo_graph.invoke(None, echo_cfg)
    texts = [m.content for m in out["messages"]]
    if texts != [echo["text"], f"echo: {echo['text']}"]:
        raise Mismatch(f"{label}: the echo graph resumed from Waymark's checkpoint gave {texts}")
    return 2


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--pg-url", default=os.environ.get("WAYMARK_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    args = p.parse_args()
    failures = 0

    expected = json.loads((args.dir / "rust_expected_sqlite.json").read_text(encoding="utf-8"))
    conn = sqlite3.connect(str(args.dir / "rust_written.db"), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        n, w = compare(saver, expected, "sqlite")
        print(f"ok: SqliteSaver read {n} Waymark-written checkpoints and {w} writes equal")
        r = resume(saver, expected, "sqlite")
        print(f"ok: SqliteSaver resumed {r} graphs from Waymark-written checkpoints")
    except Mismatch as e:
        print(f"FAIL: {e}")
        failures += 1
    finally:
        conn.close()

    schema_file = args.dir / "rust_postgres_schema.txt"
    if schema_file.exists():
        from langgraph.checkpoint.postgres import PostgresSaver

        schema = schema_file.read_text().strip()
        expected = json.loads((args.dir / "rust_expected_postgres.json").read_text(encoding="utf-8"))
        try:
            with pg_connect(args.pg_url, schema) as pg:
                saver = PostgresSaver(pg)
                saver.setup()  # must find every migration recorded and do nothing
                n, w = compare(saver, expected, "postgres")
                print(f"ok: PostgresSaver read {n} Waymark-written checkpoints and {w} writes equal")
                r = resume(saver, expected, "postgres")
                print(f"ok: PostgresSaver resumed {r} graphs from Waymark-written checkpoints")
        except Mismatch as e:
            print(f"FAIL: {e}")
            failures += 1
        finally:
            with pg_connect(args.pg_url, "public") as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        print("skipped: no Waymark-written PostgreSQL schema (PostgreSQL was unavailable)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
