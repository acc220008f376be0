"""A micro-benchmark of the Python client against `waymark serve`: get_tuple and put latency
on a thread whose `messages` channel holds ~300 KB of LangChain messages, plus a small
put_writes, through the sync (and async) saver methods.

Usage:
    python microbench.py --binary PATH [--database-url sqlite://FILE] [--encoding auto|json]
                         [--rounds N] [--profile]

Prints p50 / p90 / mean in milliseconds per operation. `--profile` prints the client-side
cProfile of the get_tuple loop. This is a development aid, not the side-by-side harness
(`scripts/bench-compare`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import os
import pstats
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

import waymark_checkpointer
from waymark_checkpointer import connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: str, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--database-url", url, "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    base = f"http://127.0.0.1:{port}/checkpointer"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("waymark serve did not become healthy")


def messages(total: int) -> list:
    out, size, i = [], 0, 0
    while size < total:
        text = ("lorem ipsum dolor sit amet " * 40)[: 200 + (i * 37) % 600]
        msg = HumanMessage(text, id=str(uuid.uuid4())) if i % 2 else AIMessage(text, id=str(uuid.uuid4()))
        out.append(msg)
        size += len(text) + 120
        i += 1
    return out


def metrics(base: str) -> dict[str, float]:
    """The server's cumulative duration sums and counts, by metric line."""
    root = base.rsplit("/checkpointer", 1)[0]
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"{root}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if "_duration_seconds_sum" in line or "_duration_seconds_count" in line:
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def server_time(before: dict[str, float], after: dict[str, float], label: str) -> str:
    """Mean server time per request of `label` (a route or a store operation) in the span."""
    parts = []
    for kind in ("http_request", "store_operation"):
        sums = [k for k in after if kind in k and "_sum" in k and f'"{label}"' in k]
        for k in sums:
            c = k.replace("_sum", "_count")
            n = after.get(c, 0) - before.get(c, 0)
            if n:
                parts.append(f"{'request' if kind == 'http_request' else 'store'} {(after[k] - before.get(k, 0)) / n * 1000:.3f} ms")
    return ", ".join(parts) or "n/a"


def stats(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p50 = xs[len(xs) // 2] * 1000
    p90 = xs[int(len(xs) * 0.9)] * 1000
    return f"{name:<28} p50 {p50:7.3f} ms   p90 {p90:7.3f} ms   mean {statistics.fmean(xs) * 1000:7.3f} ms"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--database-url", default=None)
    p.add_argument("--encoding", default="auto")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="waymark-microbench-")
    url = args.database_url or f"sqlite://{tmp}/bench.db"
    proc, base = start(args.binary, url)
    try:
        kwargs = {}
        if "encoding" in inspect.signature(connect).parameters:
            kwargs["encoding"] = args.encoding
        saver = connect(base, **kwargs)
        print(f"client {waymark_checkpointer.__file__}")
        print(f"server {args.binary} on {url}; binary bodies: {getattr(saver, 'binary', False)}")
        thread = f"bench-{uuid.uuid4()}"
        msgs = messages(300_000)
        typed = saver.serde.dumps_typed(msgs)
        print(f"messages channel: {len(msgs)} messages, {len(typed[1])} bytes serialized")
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        cp = empty_checkpoint()
        versions = {}

        def step(i: int) -> dict:
            nonlocal cp, config
            versions["messages"] = saver.get_next_version(versions.get("messages"), None)
            versions["step"] = saver.get_next_version(versions.get("step"), None)
            cp = create_checkpoint(cp, None, i)
            cp["channel_values"] = {"messages": msgs, "step": i}
            cp["channel_versions"] = dict(versions)
            return cp

        put_times, get_times, writes_times = [], [], []
        m0 = metrics(base)
        for i in range(args.rounds):
            c = step(i)
            t0 = time.perf_counter()
            config = saver.put(config, c, {"source": "loop", "step": i, "parents": {}}, dict(versions))
            t1 = time.perf_counter()
            saver.put_writes(config, [("step", i + 1), ("messages", [msgs[-1]])], str(uuid.uuid4()))
            t2 = time.perf_counter()
            put_times.append(t1 - t0)
            writes_times.append(t2 - t1)
        m1 = metrics(base)
        latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            t = saver.get_tuple(latest)
            get_times.append(time.perf_counter() - t0)
        m2 = metrics(base)
        raw_times = []
        wire_config = {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": None}
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            saver._post("get_tuple", {"config": wire_config})
            raw_times.append(time.perf_counter() - t0)
        assert t is not None and len(t.checkpoint["channel_values"]["messages"]) == len(msgs)

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.rounds):
                saver.get_tuple(latest)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
            prof = cProfile.Profile()
            prof.enable()
            for i in range(args.rounds):
                saver.put(config, step(args.rounds + i), {"source": "loop"}, dict(versions))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        async def async_gets() -> list[float]:
            out = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                await saver.aget_tuple(latest)
                out.append(time.perf_counter() - t0)
            await saver.aclose()
            return out

        aget_times = asyncio.run(async_gets())
        print(stats("put (300 KB messages)", put_times))
        print(f"  server: {server_time(m0, m1, '/checkpointer/put')}; {server_time(m0, m1, 'checkpoints.put')}")
        print(stats("put_writes (2 small writes)", writes_times))
        print(stats("get_tuple latest (300 KB)", get_times))
        print(f"  server: {server_time(m1, m2, '/checkpointer/get_tuple')}; {server_time(m1, m2, 'checkpoints.get_tuple')}")
        print(stats("aget_tuple latest (300 KB)", aget_times))
        print(stats("get_tuple wire only (no serde)", raw_times))
        saver.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
