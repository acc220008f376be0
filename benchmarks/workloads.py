"""Workloads W1-W6 over any LangGraph ``BaseCheckpointSaver``, defined as the Rust store
harness (``infrastructure/benches/stores.rs``) defines them.

Every saver gets the same calls a compiled graph makes: a real ``Checkpoint`` dict (from
``empty_checkpoint()``), LangChain ``HumanMessage``/``AIMessage`` objects in a ``messages``
channel that grows by two per step, a few small channels, ``new_versions`` holding only the
channels that changed (versions from the saver's own ``get_next_version``), then
``put_writes`` against the config ``put`` returned. So each saver serializes the way it does in
production (``SqliteSaver`` stores the whole checkpoint each step, ``PostgresSaver`` one blob
per changed channel, Waymark its own layout).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint


@dataclass(frozen=True)
class Scale:
    w1_steps: int
    reads: int
    lists: int
    w5_threads: int
    w6_steps: int


FULL = Scale(w1_steps=200, reads=500, lists=200, w5_threads=1000, w6_steps=50)
QUICK = Scale(w1_steps=60, reads=100, lists=50, w5_threads=100, w6_steps=10)

W6_WRITERS = 16
FULL_LIST_REPEATS = 5

_WORDS = (
    "the agent checkpoint tool call returned a result about weather in Paris".split()
)


def _text(rng: random.Random, length: int) -> str:
    # Words average about 5 characters with their space: length // 3 words always suffice.
    return " ".join(rng.choices(_WORDS, k=length // 3 + 2))[:length]


class Conversation:
    """One thread's growing state and the calls a graph step makes on a saver."""

    def __init__(self, saver: BaseCheckpointSaver, thread_id: str, seed: int) -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.rng = random.Random(seed)
        self.messages: list[Any] = []
        self.versions: dict[str, Any] = {}
        self.parent_id: str | None = None
        self.step_no = -1

    def _message(self, i: int) -> Any:
        content = _text(self.rng, 200 + self.rng.randrange(601))
        mid = f"run-{self.rng.getrandbits(64):016x}-{i}"
        if i % 2 == 0:
            return HumanMessage(content=content, id=mid)
        return AIMessage(content=content, id=mid)

    def next_step(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], list[tuple[str, Any]], str]:
        """(config, checkpoint, metadata, new_versions, writes, task_id) of the next step."""
        self.step_no += 1
        step = self.step_no
        n = len(self.messages)
        m1, m2 = self._message(n), self._message(n + 1)
        self.messages.extend((m1, m2))
        values: dict[str, Any] = {
            "messages": list(self.messages),
            "turns": step,
            "branch:to:agent": None,
            "summary": f"step {step}",
        }
        new_versions: dict[str, Any] = {}
        for name in values:
            changed = name != "summary" or step % 10 == 0
            if changed or name not in self.versions:
                v = self.saver.get_next_version(self.versions.get(name), None)
                self.versions[name] = v
                new_versions[name] = v
        cp = empty_checkpoint()
        cp["channel_values"] = values
        cp["channel_versions"] = dict(self.versions)
        cp["versions_seen"] = {"agent": {"branch:to:agent": self.versions["branch:to:agent"]}}
        cp["updated_channels"] = list(new_versions)
        metadata = {
            "source": "loop",
            "step": step,
            "run_id": f"run-{step // 5}",
            "parents": {},
        }
        config = {
            "configurable": {
                "thread_id": self.thread_id,
                "checkpoint_ns": "",
                **({"checkpoint_id": self.parent_id} if self.parent_id else {}),
            }
        }
        writes = [("messages", [m2]), ("branch:to:agent", None)]
        return config, cp, metadata, new_versions, writes, f"task-{step}"

    def run_step(
        self, put_lat: list[float] | None = None, writes_lat: list[float] | None = None
    ) -> str:
        config, cp, metadata, new_versions, writes, task_id = self.next_step()
        t = time.perf_counter()
        saved = self.saver.put(config, cp, metadata, new_versions)
        if put_lat is not None:
            put_lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        self.saver.put_writes(saved, writes, task_id, "~__pregel_pull, agent")
        if writes_lat is not None:
            writes_lat.append(time.perf_counter() - t)
        self.parent_id = cp["id"]
        return cp["id"]


def pct(samples: list[float], p: float) -> float:
    """The p-quantile in milliseconds (nearest rank, as the Rust harness computes it)."""
    if not samples:
        return 0.0
    v = sorted(samples)
    i = min(round((len(v) - 1) * p), len(v) - 1)
    return round(v[i] * 1e3, 3)


def lat(samples: list[float]) -> dict[str, Any]:
    return {"n": len(samples), "p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}


def run_all(
    saver: BaseCheckpointSaver,
    scale: Scale,
    stored_bytes: Callable[[], int | None],
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """W1-W6 and bytes on disk after W1, in the Rust harness's JSON shape."""
    base_bytes = stored_bytes()
    # W1
    log("W1")
    conv = Conversation(saver, "w1", 42)
    put_lat: list[float] = []
    writes_lat: list[float] = []
    ids: list[str] = []
    start = time.perf_counter()
    for _ in range(scale.w1_steps):
        ids.append(conv.run_step(put_lat, writes_lat))
    w1_time = time.perf_counter() - start
    bytes_after = stored_bytes()
    latest_cfg = {"configurable": {"thread_id": "w1", "checkpoint_ns": ""}}
    # W2
    log("W2")
    latest: list[float] = []
    for _ in range(scale.reads):
        t = time.perf_counter()
        tup = saver.get_tuple(latest_cfg)
        latest.append(time.perf_counter() - t)
        if tup is None or tup.checkpoint["id"] != ids[-1]:
            raise AssertionError("W2: get latest did not return the last checkpoint")
    # W3
    log("W3")
    rng = random.Random(7)
    by_id: list[float] = []
    for _ in range(scale.reads):
        cid = ids[rng.randrange(len(ids))]
        cfg = {"configurable": {"thread_id": "w1", "checkpoint_ns": "", "checkpoint_id": cid}}
        t = time.perf_counter()
        tup = saver.get_tuple(cfg)
        by_id.append(time.perf_counter() - t)
        if tup is None or tup.checkpoint["id"] != cid:
            raise AssertionError("W3: get by id did not return that checkpoint")
    # W4
    log("W4")
    list20: list[float] = []
    for _ in range(scale.lists):
        t = time.perf_counter()
        page = list(saver.list(latest_cfg, limit=20))
        list20.append(time.perf_counter() - t)
        if len(page) != min(20, scale.w1_steps):
            raise AssertionError(f"W4: list limit 20 gave {len(page)} checkpoints")
    list_all: list[float] = []
    for _ in range(FULL_LIST_REPEATS):
        t = time.perf_counter()
        everything = list(saver.list({"configurable": {"thread_id": "w1"}}))
        list_all.append(time.perf_counter() - t)
        if len(everything) != scale.w1_steps:
            raise AssertionError(f"W4: full list gave {len(everything)} checkpoints")
    # W5
    log("W5")
    start = time.perf_counter()
    for t in range(scale.w5_threads):
        c = Conversation(saver, f"w5-{t}", t + 1)
        for _ in range(5):
            c.run_step()
    w5_time = time.perf_counter() - start
    # W6
    log("W6")
    barrier = threading.Barrier(W6_WRITERS)

    def writer(w: int) -> None:
        c = Conversation(saver, f"w6-{w}", 1000 + w)
        barrier.wait(timeout=60)
        for _ in range(scale.w6_steps):
            c.run_step()

    with ThreadPoolExecutor(max_workers=W6_WRITERS) as pool:
        start = time.perf_counter()
        futures = [pool.submit(writer, w) for w in range(W6_WRITERS)]
        for f in futures:
            f.result(timeout=600)
        w6_time = time.perf_counter() - start
    growth = None
    if base_bytes is not None and bytes_after is not None:
        growth = max(bytes_after - base_bytes, 0)
    return {
        "w1": {
            "steps": scale.w1_steps,
            "steps_per_s": round(scale.w1_steps / w1_time),
            "put": lat(put_lat),
            "put_writes": lat(writes_lat),
        },
        "w2_get_latest": lat(latest),
        "w3_get_by_id": lat(by_id),
        "w4_list_20": lat(list20),
        "w4_list_all": lat(list_all),
        "w5": {
            "threads": scale.w5_threads,
            "steps": scale.w5_threads * 5,
            "steps_per_s": round(scale.w5_threads * 5 / w5_time),
        },
        "w6": {
            "writers": W6_WRITERS,
            "steps": W6_WRITERS * scale.w6_steps,
            "steps_per_s": round(W6_WRITERS * scale.w6_steps / w6_time),
        },
        "bytes": {"empty_db": base_bytes, "after_w1": bytes_after, "w1_growth": growth},
    }
