"""Runs real LangGraph graphs (no LLM) against SqliteSaver and PostgresSaver and dumps what
LangGraph itself returns, so Waymark's Rust layout stores can be checked against it.

Usage:
    python generate_fixtures.py --out DIR [--pg-url URL] [--pg-schema NAME] [--keep-schema]

Writes under DIR:
    manifest.json              package versions and what was run
    sqlite/checkpoints.db      the SqliteSaver database (WAL folded in)
    sqlite/expected.json       list/get_tuple/history/filter answers of SqliteSaver
    postgres/tables.json       every row of the four PostgresSaver tables
    postgres/expected.json     the same answers from PostgresSaver

The graph: an "agent" node that fakes a model (an AIMessage with two tool calls, later a final
answer with usage metadata), an "approve" node that calls interrupt() and is resumed with
Command(resume=...), the tool calls fanned out to "tool_worker" with Send, a compiled subgraph
node "summarize" (its own checkpoint namespace), and a fork made with update_state on an older
checkpoint that is then run until it interrupts again. A second graph "echo" stops before its
only node, leaving the input checkpoint that read_back.py's Rust-written twin imitates.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import operator
import os
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

MESSAGE_FIELDS = ["type", "content", "id", "name", "tool_calls", "tool_call_id", "usage_metadata"]
PACKAGES = [
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langchain-core",
    "ormsgpack",
    "psycopg",
]


# ----------------------------------------------------------------------------------------------
# Graphs
# ----------------------------------------------------------------------------------------------


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    approved: bool
    tool_runs: Annotated[int, operator.add]


class ToolInput(TypedDict):
    tool_call: dict


def agent(state: State) -> dict:
    tool_results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    if not tool_results:
        return {
            "messages": [
                AIMessage(
                    content="",
                    id=f"ai-{len(state['messages'])}",
                    tool_calls=[
                        {"name": "lookup", "args": {"q": "weather"}, "id": "call_1", "type": "tool_call"},
                        {"name": "calc", "args": {"expr": "6*7"}, "id": "call_2", "type": "tool_call"},
                    ],
                )
            ]
        }
    return {
        "messages": [
            AIMessage(
                content="It is sunny, and 6*7 is 42. ✓",
                id="ai-final",
                usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
                response_metadata={"model_name": "fake-model"},
            )
        ]
    }


def approve(state: State) -> dict:
    last = state["messages"][-1]
    answer = interrupt(
        {"question": "Approve tool call?", "tool_calls": [tc["name"] for tc in last.tool_calls]}
    )
    return {"approved": answer == "yes"}


def after_agent(state: State) -> str:
    last = state["messages"][-1]
    return "approve" if getattr(last, "tool_calls", None) else "summarize"


def fan_out(state: State) -> list[Send]:
    last = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
    return [Send("tool_worker", {"tool_call": tc}) for tc in last.tool_calls]


def tool_worker(arg: ToolInput) -> dict:
    tc = arg["tool_call"]
    result = {"lookup": "sunny", "calc": "42"}[tc["name"]]
    return {
        "messages": [
            ToolMessage(content=result, tool_call_id=tc["id"], name=tc["name"], id=f"tool-{tc['id']}")
        ],
        "tool_runs": 1,
    }


def build_summarizer():
    def count(state: State) -> dict:
        return {"tool_runs": 0}

    def condense(state: State) -> dict:
        n = sum(isinstance(m, ToolMessage) for m in state["messages"])
        return {"messages": [AIMessage(content=f"Summary: {n} tool results.", id="summary-1")]}

    sub = StateGraph(State)
    sub.add_node("count", count)
    sub.add_node("condense", condense)
    sub.add_edge(START, "count")
    sub.add_edge("count", "condense")
    sub.add_edge("condense", END)
    return sub.compile()


def build_agent_graph(checkpointer: BaseCheckpointSaver):
    g = StateGraph(State)
    g.add_node("agent", agent)
    g.add_node("approve", approve)
    g.add_node("tool_worker", tool_worker)
    g.add_node("summarize", build_summarizer())
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", after_agent, ["approve", "summarize"])
    g.add_conditional_edges("approve", fan_out, ["tool_worker"])
    g.add_edge("tool_worker", "agent")
    g.add_edge("summarize", END)
    return g.compile(checkpointer=checkpointer)


class EchoState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def echo(state: EchoState) -> dict:
    last = state["messages"][-1]
    return {"messages": [AIMessage(content=f"echo: {last.content}", id=f"echo-{last.id}")]}


def build_echo_graph(checkpointer: BaseCheckpointSaver, interrupt_before: bool = True):
    g = StateGraph(EchoState)
    g.add_node("echo", echo)
    g.add_edge(START, "echo")
    g.add_edge("echo", END)
    return g.compile(checkpointer=checkpointer, interrupt_before=["echo"] if interrupt_before else None)


def config(thread_id: str, run_id: str, **configurable: Any) -> dict:
    return {
        "configurable": {"thread_id": thread_id, "user_id": "u-42", **configurable},
        "metadata": {"fixture": "lg-fixtures", "run_id": run_id},
    }


def run_graphs(saver: BaseCheckpointSaver) -> dict:
    """Runs every scenario on `saver`; returns what was run (for the manifest)."""
    graph = build_agent_graph(saver)
    main = config("t-main", "run-1")
    graph.invoke({"messages": [HumanMessage(content="What's the weather? Also 6*7.", id="h-1")]}, main)
    assert graph.get_state(main).next == ("approve",), graph.get_state(main).next
    graph.invoke(Command(resume="yes"), config("t-main", "run-2"))
    final = graph.get_state(main)
    assert not final.next and final.values["messages"][-1].id == "summary-1"
    # Fork: update_state on the checkpoint that waited for approval, then run the fork.
    waiting = next(s for s in graph.get_state_history(main) if s.next == ("approve",))
    fork_cfg = graph.update_state(
        waiting.config, {"messages": [HumanMessage(content="Actually, ask again.", id="h-2")]}
    )
    # The update came "from" agent with no tool calls, so the fork goes straight to summarize.
    graph.invoke(None, {**fork_cfg, "metadata": {"fixture": "lg-fixtures", "run_id": "run-3"}})
    assert not graph.get_state(main).next
    # The echo graph, stopped before its node: the layout read_back.py imitates.
    echo_graph = build_echo_graph(saver)
    echo_graph.invoke({"messages": [HumanMessage(content="ping", id="h-echo")]}, config("t-echo", "run-4"))
    assert echo_graph.get_state(config("t-echo", "run-4")).next == ("echo",)
    return {"threads": ["t-main", "t-echo"], "runs": ["run-1", "run-2", "run-3", "run-4"]}


# ----------------------------------------------------------------------------------------------
# Dumping what LangGraph returns
# ----------------------------------------------------------------------------------------------


def message_view(m: BaseMessage) -> dict:
    return {f: getattr(m, f, None) for f in MESSAGE_FIELDS}


def typed(serde, value: Any) -> dict:
    tag, data = serde.dumps_typed(value)
    return {"type": tag, "hex": bytes(data).hex()}


def messages_of(value: Any) -> list | None:
    if isinstance(value, list) and value and all(isinstance(m, BaseMessage) for m in value):
        return [message_view(m) for m in value]
    return None


def version_json(v: Any) -> Any:
    return v


def tuple_json(serde, t) -> dict:
    cp = t.checkpoint
    known = {"v", "id", "ts", "channel_values", "channel_versions", "versions_seen", "updated_channels"}
    out = {
        "thread_id": t.config["configurable"]["thread_id"],
        "checkpoint_ns": t.config["configurable"]["checkpoint_ns"],
        "checkpoint_id": t.config["configurable"]["checkpoint_id"],
        "parent_checkpoint_id": (t.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        "checkpoint": {
            "v": cp["v"],
            "id": cp["id"],
            "ts": cp["ts"],
            "channel_values": {k: typed(serde, v) for k, v in cp["channel_values"].items()},
            "channel_versions": cp["channel_versions"],
            "versions_seen": cp["versions_seen"],
            "updated_channels": cp.get("updated_channels"),
            "extra": {k: typed(serde, v) for k, v in cp.items() if k not in known},
        },
        "metadata": t.metadata,
        "pending_writes": [
            {"task_id": task, "channel": ch, "value": typed(serde, v)} for task, ch, v in t.pending_writes
        ],
        "messages": messages_of(cp["channel_values"].get("messages")),
        "write_messages": [
            messages_of(v) if ch == "messages" else None for _task, ch, v in t.pending_writes
        ],
    }
    return out


FILTERS = [
    {"source": "loop"},
    {"source": "input"},
    {"source": "update"},
    {"step": 1},
    {"step": 1.0},
    {"run_id": "run-2"},
    {"fixture": "lg-fixtures", "source": "loop", "step": 2},
    {"parents": {}},
    {"user_id": "u-42"},
    {"missing": None},
]


def dump_saver(saver: BaseCheckpointSaver, graph_for_history) -> dict:
    serde = saver.serde
    tuples = list(saver.list(None))
    latest = {}
    for t in tuples:
        c = t.config["configurable"]
        key = f"{c['thread_id']}|{c['checkpoint_ns']}"
        if key not in latest:
            got = saver.get_tuple({"configurable": {"thread_id": c["thread_id"], "checkpoint_ns": c["checkpoint_ns"]}})
            latest[key] = got.config["configurable"]["checkpoint_id"]
    history = [
        {
            "checkpoint_id": s.config["configurable"]["checkpoint_id"],
            "next": list(s.next),
            "metadata": s.metadata,
            "interrupts": [i.value for i in s.interrupts],
        }
        for s in graph_for_history.get_state_history({"configurable": {"thread_id": "t-main"}})
    ]
    filters = []
    for f in FILTERS:
        try:
            ids = [t.config["configurable"]["checkpoint_id"] for t in saver.list(None, filter=f)]
            filters.append({"filter": f, "ids": ids})
        except Exception as e:  # noqa: BLE001 - recorded, compared by the Rust side
            filters.append({"filter": f, "error": type(e).__name__})
    main_root = [t for t in tuples if t.config["configurable"]["thread_id"] == "t-main"
                 and t.config["configurable"]["checkpoint_ns"] == ""]
    before_id = main_root[2].config["configurable"]["checkpoint_id"]
    page = list(saver.list({"configurable": {"thread_id": "t-main"}}, before={"configurable": {"checkpoint_id": before_id}}, limit=3))
    return {
        "tuples": [tuple_json(serde, t) for t in tuples],
        "latest": latest,
        "history": history,
        "filters": filters,
        "page": {
            "thread_id": "t-main",
            "before": before_id,
            "limit": 3,
            "ids": [t.config["configurable"]["checkpoint_id"] for t in page],
        },
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def generate_sqlite(out: Path) -> dict:
    d = out / "sqlite"
    d.mkdir(parents=True, exist_ok=True)
    db = d / "checkpoints.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    ran = run_graphs(saver)
    expected = dump_saver(saver, build_agent_graph(saver))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    Path(str(db) + "-wal").unlink(missing_ok=True)
    Path(str(db) + "-shm").unlink(missing_ok=True)
    write_json(d / "expected.json", expected)
    return ran


def pg_connect(url: str, schema: str):
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(
        url, autocommit=True, prepare_threshold=0, row_factory=dict_row,
        options=f"-c search_path={schema}",
    )


def dump_pg_tables(conn) -> dict:
    tables = {}
    with conn.cursor() as cur:
        cur.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        tables["checkpoint_migrations"] = [r["v"] for r in cur.fetchall()]
        cur.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint::text AS checkpoint, metadata::text AS metadata FROM checkpoints "
            "ORDER BY thread_id, checkpoint_ns, checkpoint_id"
        )
        tables["checkpoints"] = cur.fetchall()
        cur.execute(
            "SELECT thread_id, checkpoint_ns, channel, version, type, encode(blob, 'hex') AS blob "
            "FROM checkpoint_blobs ORDER BY thread_id, checkpoint_ns, channel, version"
        )
        tables["checkpoint_blobs"] = cur.fetchall()
        cur.execute(
            "SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, "
            "encode(blob, 'hex') AS blob FROM checkpoint_writes "
            "ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx"
        )
        tables["checkpoint_writes"] = cur.fetchall()
    return tables


CATALOG_SQL = """
SELECT c.relname AS table_name, a.attnum AS position, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind = 'r'
ORDER BY c.relname, a.attnum
"""

INDEX_SQL = """
SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') AS indexdef
FROM pg_indexes WHERE schemaname = current_schema() ORDER BY tablename, indexname
"""


def dump_pg_catalog(conn) -> dict:
    """What setup() created: every column and index of the schema (compared by the Rust test
    with what Waymark's setup creates)."""
    with conn.cursor() as cur:
        cur.execute(CATALOG_SQL)
        columns = cur.fetchall()
        cur.execute(INDEX_SQL)
        indexes = cur.fetchall()
    return {"columns": columns, "indexes": indexes}


def generate_postgres(out: Path, url: str, schema: str, keep: bool) -> dict:
    from langgraph.checkpoint.postgres import PostgresSaver

    d = out / "postgres"
    d.mkdir(parents=True, exist_ok=True)
    with pg_connect(url, "public") as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with pg_connect(url, schema) as conn:
            saver = PostgresSaver(conn)
            saver.setup()
            write_json(d / "catalog.json", dump_pg_catalog(conn))
            ran = run_graphs(saver)
            expected = dump_saver(saver, build_agent_graph(saver))
            write_json(d / "expected.json", expected)
            write_json(d / "tables.json", dump_pg_tables(conn))
    finally:
        if not keep:
            with pg_connect(url, "public") as admin:
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return ran


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--pg-url", default=os.environ.get("WAYMARK_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    p.add_argument("--pg-schema", default="lg_fixture")
    p.add_argument("--keep-schema", action="store_true", help="leave the PostgreSQL schema for live reads")
    p.add_argument("--skip-postgres", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "tests/python/generate_fixtures.py",
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "python": sys.version.split()[0],
    }
    manifest["sqlite"] = generate_sqlite(args.out)
    print(f"sqlite: {args.out / 'sqlite'}")
    if not args.skip_postgres:
        manifest["postgres"] = generate_postgres(args.out, args.pg_url, args.pg_schema, args.keep_schema)
        manifest["postgres"]["schema"] = args.pg_schema if args.keep_schema else None
        print(f"postgres: {args.out / 'postgres'}")
    write_json(args.out / "manifest.json", manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
