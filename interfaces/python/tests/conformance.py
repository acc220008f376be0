"""Runs LangGraph's conformance suite, the split checks and a graph smoke test through the
Waymark protocol client against `waymark serve` (remote checkpointer protocol §9).

Usage:
    python conformance.py --binary PATH --target NAME --database-url URL [--json-out FILE]
                          [--encoding msgpack|json|auto]

Targets:
    remote        the suite through the client, every capability required: 81/81
    split         Waymark writes, LangGraph's own async saver reads the same database: 58/58
    split-rev     LangGraph's saver writes, Waymark reads: 58/58
    smoke         a deterministic graph run with sync invoke through the client, compared
                  with the same graph on LangGraph's InMemorySaver
    client        the client's transport: threads, async tasks, a server restart, errors

`--encoding` chooses the client's body encoding: `msgpack` (the default; the server must
advertise it), `json` (protocol v1 JSON, as older clients speak it) or `auto`.

Every run prints one line `RESULT <label>: passed=<n> failed=<m> <detail>` and exits non-zero
on any failure. The database URL is handed to the server unchanged; split targets need a
`langgraph+sqlite://` or `langgraph+postgres://` URL, whose database the LangGraph saver opens
too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import socket
import subprocess
import sys
import tempfile
import uuid
import time
import traceback
from collections import Counter
from typing import Annotated, Any, TypedDict

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from waymark_checkpointer import aconnect, connect

#: Exact passed-test counts per capability (protocol §9.3 step 4).
FULL_COUNTS = {
    "put": 17,
    "put_writes": 10,
    "get_tuple": 10,
    "list": 16,
    "delete_thread": 5,
    "delete_for_runs": 7,
    "copy_thread": 8,
    "prune": 8,
}
BASE = ("put", "put_writes", "get_tuple", "list", "delete_thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`waymark serve` on a free port, stopped with SIGTERM."""

    def __init__(self, binary: str, database_url: str, admin: bool = False) -> None:
        self.binary = binary
        self.database_url = database_url
        # Remote and smoke targets run as a named user whose per-user token binds it; the
        # split targets share a database with a Python saver writing row-less threads, which
        # only the administrator sees, so they run in the server's explicit admin mode.
        self.admin = admin
        self.token = f"conformance-{uuid.uuid4().hex}"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="waymark-serve-", suffix=".log", delete=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/checkpointer"

    def start(self) -> None:
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--database-url", self.database_url, "--bind", f"127.0.0.1:{self.port}"]
            + (["--admin-unscoped"] if self.admin else ["--user-token", f"conformance={self.token}"]),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"waymark serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"waymark serve did not become healthy in 30 s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.returncode not in (0, None):
            print(f"  note: waymark serve exited with {self.proc.returncode}", flush=True)

    def tail(self, n: int = 40) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")


def langgraph_location(database_url: str) -> tuple[str, str]:
    """("sqlite", path) or ("postgres", dsn) of a langgraph+ URL."""
    if database_url.startswith("langgraph+sqlite://"):
        path = database_url[len("langgraph+sqlite://"):].split("?")[0]
        return "sqlite", path
    if database_url.startswith("langgraph+postgres"):
        return "postgres", database_url[len("langgraph+"):]
    raise SystemExit(f"split targets need a langgraph+sqlite:// or langgraph+postgres:// URL, got {database_url}")


class _LangGraphSaver:
    """An async context manager giving LangGraph's own async saver on the server's database."""

    def __init__(self, database_url: str) -> None:
        self.kind, self.location = langgraph_location(database_url)
        self._cm: Any = None

    async def __aenter__(self) -> BaseCheckpointSaver:
        if self.kind == "sqlite":
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            self._cm = AsyncSqliteSaver.from_conn_string(self.location)
            saver = await self._cm.__aenter__()
            await saver.setup()
            return saver
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        self._cm = AsyncPostgresSaver.from_conn_string(self.location)
        saver = await self._cm.__aenter__()
        # Must find migrations 0-9 recorded by the server and do nothing (§9.5).
        await saver.setup()
        return saver

    async def __aexit__(self, *exc: Any) -> None:
        await self._cm.__aexit__(*exc)


def split_class(reader: BaseCheckpointSaver, writer: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """The split adaptor: exactly the five base async methods (§9.5)."""

    class SplitSaver(BaseCheckpointSaver):
        def __init__(self) -> None:
            super().__init__(serde=reader.serde)

        async def aget_tuple(self, config):  # type: ignore[no-untyped-def]
            return await reader.aget_tuple(config)

        async def alist(self, config, *, filter=None, before=None, limit=None):  # type: ignore[no-untyped-def]
            async for t in reader.alist(config, filter=filter, before=before, limit=limit):
                yield t

        async def aput(self, config, checkpoint, metadata, new_versions):  # type: ignore[no-untyped-def]
            return await writer.aput(config, checkpoint, metadata, new_versions)

        async def aput_writes(self, config, writes, task_id, task_path=""):  # type: ignore[no-untyped-def]
            return await writer.aput_writes(config, writes, task_id, task_path)

        async def adelete_thread(self, thread_id):  # type: ignore[no-untyped-def]
            return await writer.adelete_thread(thread_id)

        def get_next_version(self, current, channel):  # type: ignore[no-untyped-def]
            return writer.get_next_version(current, channel)

    return SplitSaver()


def verbose_failures_only() -> ProgressCallbacks:
    def start(capability: str, detected: bool) -> None:
        print(f"  {capability}: " if detected else f"  {capability} (not detected)", end="" if detected else "\n", flush=True)

    def result(capability: str, test: str, passed: bool, error: str | None) -> None:
        print("." if passed else "F", end="", flush=True)
        if not passed:
            print(f"\n    FAILED {test}: {(error or '').strip().splitlines()[-1:] }", flush=True)

    def end(capability: str) -> None:
        print(flush=True)

    return ProgressCallbacks(on_capability_start=start, on_test_result=result, on_capability_end=end)


async def run_suite(args: argparse.Namespace, server: Server) -> tuple[int, int, str, dict[str, Any]]:
    target = args.target
    name = f"waymark-{target}"

    async def lifespan():  # type: ignore[no-untyped-def]
        server.start()
        try:
            yield
        finally:
            server.stop()

    if target == "remote":

        @checkpointer_test(name=name, lifespan=lifespan)
        async def factory():  # type: ignore[no-untyped-def]
            saver = await aconnect(server.base, token=server.token, encoding=args.encoding)
            try:
                yield saver
            finally:
                await saver.aclose()

        expected = FULL_COUNTS
    else:

        @checkpointer_test(name=name, lifespan=lifespan)
        async def factory():  # type: ignore[no-untyped-def]
            waymark = await aconnect(server.base, encoding=args.encoding)
            async with _LangGraphSaver(args.database_url) as langgraph:
                if target == "split":
                    yield split_class(reader=langgraph, writer=waymark)
                else:
                    yield split_class(reader=waymark, writer=langgraph)
            await waymark.aclose()

        expected = {k: FULL_COUNTS[k] for k in BASE}

    report = await validate(factory, progress=verbose_failures_only())
    report.print_report()
    results = report.to_dict()
    passed = sum(r.tests_passed for r in report.results.values())
    failed = sum(r.tests_failed for r in report.results.values())
    problems = []
    if not report.passed_all_base():
        problems.append("base capabilities failed")
    if not report.passed_all():
        problems.append("not every detected capability passed")
    for cap, want in expected.items():
        got = report.results.get(cap)
        got_n = got.tests_passed if got else 0
        if got_n != want:
            problems.append(f"{cap}: {got_n}/{want} passed")
    unexpected = [c for c, r in report.results.items() if r.detected and c not in expected]
    if unexpected:
        problems.append(f"unexpected capabilities detected: {unexpected}")
    total = sum(expected.values())
    detail = f"{report.conformance_level()} {passed}/{total}"
    if problems:
        failed = max(failed, 1)
        detail += " PROBLEMS: " + "; ".join(problems)
    return passed, failed, detail, results


# -- graph smoke test (§9.7) -----------------------------------------------------------------


class SubState(TypedDict):
    items: Annotated[list, operator.add]


class State(TypedDict):
    items: Annotated[list, operator.add]


def build_graph(checkpointer: BaseCheckpointSaver):  # type: ignore[no-untyped-def]
    def ask(state: SubState) -> dict[str, Any]:
        answer = interrupt("sub: continue?")
        return {"items": [f"sub:{answer}"]}

    sub = StateGraph(SubState)
    sub.add_node("ask", ask)
    sub.add_edge(START, "ask")
    sub.add_edge("ask", END)
    subgraph = sub.compile()

    def start(state: State) -> dict[str, Any]:
        return {"items": ["start"]}

    def fan_out(state: State) -> list[Send]:
        return [Send("worker", {"items": [f"job-{i}"]}) for i in range(3)]

    def worker(state: State) -> dict[str, Any]:
        return {"items": [f"done:{state['items'][-1]}"]}

    def approve(state: State) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"items": [f"approved:{answer}"]}

    g = StateGraph(State)
    g.add_node("start", start)
    g.add_node("worker", worker)
    g.add_node("sub", subgraph)
    g.add_node("approve", approve)
    g.add_edge(START, "start")
    g.add_conditional_edges("start", fan_out, ["worker"])
    g.add_edge("worker", "sub")
    g.add_edge("sub", "approve")
    g.add_edge("approve", END)
    return g.compile(checkpointer=checkpointer)


def run_scenario(checkpointer: BaseCheckpointSaver, thread_id: str) -> dict[str, Any]:
    graph = build_graph(checkpointer)
    config = {"configurable": {"thread_id": thread_id}}
    graph.invoke({"items": ["input"]}, config)  # stops in the subgraph
    graph.invoke(Command(resume="ok"), config)  # stops at approve
    graph.invoke(Command(resume="yes"), config)  # finishes
    history = list(graph.get_state_history(config))
    # Fork: update_state on an older checkpoint (the one right after "start" ran), continue.
    older = next(s for s in reversed(history) if s.values.get("items") and "start" in s.values["items"] and s.next)
    fork_config = graph.update_state(older.config, {"items": ["forked"]})
    graph.invoke(None, fork_config)
    graph.invoke(Command(resume="fork-ok"), config)
    graph.invoke(Command(resume="fork-yes"), config)
    final = graph.get_state(config)
    all_tuples = list(checkpointer.list({"configurable": {"thread_id": thread_id}}))
    per_ns = Counter(t.config["configurable"]["checkpoint_ns"].split(":")[0] for t in all_tuples)
    root = [t for t in all_tuples if t.config["configurable"]["checkpoint_ns"] == ""]
    newest_root = max(t.config["configurable"]["checkpoint_id"] for t in root)
    fork_ids = [
        t.config["configurable"]["checkpoint_id"]
        for t in root
        if t.metadata.get("source") in ("update", "fork", "loop")
        and t.config["configurable"]["checkpoint_id"] > fork_config["configurable"]["checkpoint_id"]
    ]
    subgraph_parents_ok = all(
        t.metadata.get("parents", {}).get("") is not None
        for t in all_tuples
        if t.config["configurable"]["checkpoint_ns"] != ""
    )
    return {
        "namespaces": dict(sorted(per_ns.items())),
        "checkpoints": len(all_tuples),
        "history": len(list(graph.get_state_history(config))),
        "final_items": len(final.values["items"]),
        "final_values": final.values["items"],
        "latest_is_newest_fork": final.config["configurable"]["checkpoint_id"] == newest_root and bool(fork_ids),
        "subgraph_parents": subgraph_parents_ok,
        "has_subgraph_namespace": any(k == "sub" for k in per_ns),
    }


def run_smoke(args: argparse.Namespace, server: Server) -> tuple[int, int, str, dict[str, Any]]:
    from langgraph.checkpoint.memory import InMemorySaver

    server.start()
    try:
        saver = connect(server.base, token=server.token, encoding=args.encoding)
        try:
            got = run_scenario(saver, f"smoke-{uuid.uuid4()}")
            # The sync delete family works too.
            saver.delete_thread("smoke-missing")
        finally:
            saver.close()
    finally:
        server.stop()
    want = run_scenario(InMemorySaver(), "smoke-reference")
    checks = {
        "namespaces": got["namespaces"] == want["namespaces"],
        "checkpoint count": got["checkpoints"] == want["checkpoints"],
        "state-history length": got["history"] == want["history"],
        "final message count": got["final_items"] == want["final_items"],
        "final values": got["final_values"] == want["final_values"],
        "latest is the newest fork checkpoint": got["latest_is_newest_fork"] and want["latest_is_newest_fork"],
        "subgraph checkpoints name their root parent": got["subgraph_parents"],
        "subgraph namespace present": got["has_subgraph_namespace"] == want["has_subgraph_namespace"],
    }
    passed = sum(checks.values())
    failed = len(checks) - passed
    bad = [k for k, ok in checks.items() if not ok]
    detail = "all equal to InMemorySaver" if not bad else f"differs: {bad}; waymark={got} reference={want}"
    return passed, failed, detail, {"waymark": got, "reference": want}


# -- client transport checks ---------------------------------------------------------------


def run_client(args: argparse.Namespace, server: Server) -> tuple[int, int, str, dict[str, Any]]:
    """The client's transport: kept-alive connections shared by threads and tasks, a retry
    after the server restarts, error kinds, and the encoding actually negotiated."""
    import concurrent.futures
    import uuid

    from langgraph.checkpoint.base import empty_checkpoint

    checks: dict[str, bool] = {}
    server.start()
    try:
        saver = connect(server.base, token=server.token, encoding=args.encoding)
        offered = "application/vnd.waymark.checkpointer+msgpack" in saver.capabilities.get(
            "content_types", []
        )
        checks["negotiated encoding"] = saver.binary == (args.encoding != "json" and offered)
        thread = f"client-{uuid.uuid4()}"
        cp = empty_checkpoint()
        cp["channel_values"] = {"blob": b"\x00\xff" * 1000, "n": 7}
        big = {"big": 2**70, "neg": -(2**70) - 1, "nested": {"list": [10**30, 2]}}
        cfg = saver.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, cp, big, {})
        latest = {"configurable": {"thread_id": thread}}
        t = saver.get_tuple(latest)
        checks["round trip (bytes)"] = (
            t is not None and t.checkpoint["channel_values"] == cp["channel_values"]
        )
        # Integers beyond 64 bits are exact (protocol §2): msgpack cannot carry them, so the
        # client sends that body as JSON and the server answers JSON (docs/checkpointer-msgpack.md).
        listed = list(saver.list(latest, limit=1))
        checks["ints beyond 64 bits in metadata exact (get_tuple, list)"] = (
            t is not None
            and all(t.metadata.get(k) == v for k, v in big.items())
            and type(t.metadata.get("big")) is int
            and len(listed) == 1
            and all(listed[0].metadata.get(k) == v for k, v in big.items())
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: saver.get_tuple(latest), range(64)))
        checks["64 calls from 8 threads"] = all(g is not None and g.config == cfg for g in got)

        async def many() -> bool:
            res = await asyncio.gather(*(saver.aget_tuple(latest) for _ in range(32)))
            await saver.aclose()
            return all(r is not None and r.config == cfg for r in res)

        checks["32 concurrent async calls"] = asyncio.run(many())
        try:
            saver.prune("not-a-list")  # type: ignore[attr-defined]
            checks["TypeError envelope raised as TypeError"] = False
        except TypeError:
            checks["TypeError envelope raised as TypeError"] = True
        server.stop()
        server.start()  # same port: the kept-alive connection is now dead
        try:
            saver.get_tuple(latest)
            list(saver.list(latest, limit=1))
            checks["reconnects after a server restart"] = True
        except ConnectionError:
            traceback.print_exc()
            checks["reconnects after a server restart"] = False
        saver.close()
    finally:
        server.stop()
    passed = sum(checks.values())
    failed = len(checks) - passed
    bad = [k for k, ok in checks.items() if not ok]
    detail = "transport checks passed" if not bad else f"failed: {bad}"
    return passed, failed, detail, checks


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--target", required=True, choices=["remote", "split", "split-rev", "smoke", "client"])
    p.add_argument("--database-url", required=True)
    p.add_argument("--label", default=None)
    p.add_argument("--json-out", default=None)
    p.add_argument(
        "--encoding",
        default="msgpack",
        choices=["msgpack", "json", "auto"],
        help="client body encoding: msgpack (required of the server), json (protocol v1) or auto",
    )
    args = p.parse_args()
    label = args.label or args.target
    server = Server(args.binary, args.database_url, admin=args.target in ("split", "split-rev"))
    try:
        if args.target == "smoke":
            passed, failed, detail, data = run_smoke(args, server)
        elif args.target == "client":
            passed, failed, detail, data = run_client(args, server)
        else:
            passed, failed, detail, data = asyncio.run(run_suite(args, server))
    except Exception as e:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        print(f"  server log:\n{server.tail()}")
        print(f"RESULT {label}: passed=0 failed=1 could not run: {e}", flush=True)
        return 1
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(data, f, indent=2, default=str)
    print(f"RESULT {label}: passed={passed} failed={failed} {detail}", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
