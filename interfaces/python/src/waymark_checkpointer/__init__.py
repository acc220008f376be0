"""A LangGraph checkpointer backed by a Waymark server (remote checkpointer protocol v1).

The client keeps everything that needs Python objects (serialization through ``serde``,
metadata merging, version generation, config reduction) and sends one HTTP request per saver
call; the server stores the data in Waymark's or LangGraph's own table layouts.

Use :func:`connect` (or :func:`aconnect` inside an event loop): it reads the server's
capabilities and builds a class that overrides exactly the optional operations the server
offers, because LangGraph's conformance suite detects capabilities by method override.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

__all__ = [
    "PROTOCOL_VERSION",
    "WaymarkError",
    "WaymarkSaver",
    "aconnect",
    "connect",
    "saver_class",
]

PROTOCOL_VERSION = 1

#: The optional operations a server may advertise, with the methods each one adds.
OPTIONAL_OPERATIONS = ("delete_for_runs", "copy_thread", "prune")


_KINDS = {
    "ValueError": builtins.ValueError,
    "TypeError": builtins.TypeError,
    "LookupError": builtins.LookupError,
    "NotImplementedError": builtins.NotImplementedError,
    "ConnectionError": builtins.ConnectionError,
    "TimeoutError": builtins.TimeoutError,
    "RuntimeError": builtins.RuntimeError,
    "PermissionError": builtins.PermissionError,
}


class WaymarkError(RuntimeError):
    """An error whose ``kind`` this client does not know."""

    def __init__(self, message: str, kind: str | None, status: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
        message, kind = str(body.get("error")), body.get("kind")
    except Exception:  # noqa: BLE001 - a proxy's HTML error page, say
        message, kind = resp.text or resp.reason_phrase, None
    exc = _KINDS.get(kind or "")
    if exc is None:
        raise WaymarkError(f"{resp.status_code}: {message}", kind, resp.status_code)
    raise exc(message)


def _dumps(body: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON, and the server would refuse it less clearly.
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _base_url(url: str) -> str:
    return url.rstrip("/")


class WaymarkSaver(BaseCheckpointSaver[str]):
    """The base operations of the protocol. Prefer :func:`connect`, which adds the optional
    operations the server advertises."""

    def __init__(
        self,
        base_url: str,
        *,
        serde: SerializerProtocol | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.base_url = _base_url(base_url)
        self._headers = {"content-type": "application/json; charset=utf-8"}
        self._headers.update(headers or {})
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self.capabilities = capabilities or {}
        self._client = httpx.Client(headers=self._headers, timeout=timeout)
        self._aclients: dict[int, httpx.AsyncClient] = {}

    # -- transport -------------------------------------------------------------------------

    def _post(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.post(f"{self.base_url}/{op}", content=_dumps(body))
        except httpx.TimeoutException as e:
            raise TimeoutError(f"waymark {op}: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionError(f"waymark {op}: {e}") from e
        _raise_for(resp)
        return resp.json()

    def _aclient(self) -> httpx.AsyncClient:
        # An AsyncClient belongs to the loop it first ran on; keep one per loop.
        loop = id(asyncio.get_running_loop())
        client = self._aclients.get(loop)
        if client is None:
            client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
            self._aclients[loop] = client
        return client

    async def _apost(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._aclient().post(
                f"{self.base_url}/{op}", content=_dumps(body)
            )
        except httpx.TimeoutException as e:
            raise TimeoutError(f"waymark {op}: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionError(f"waymark {op}: {e}") from e
        _raise_for(resp)
        return resp.json()

    def close(self) -> None:
        """Closes the sync connection pool (async pools close with :meth:`aclose`)."""
        self._client.close()

    async def aclose(self) -> None:
        """Closes every connection pool of this saver."""
        clients, self._aclients = list(self._aclients.values()), {}
        for c in clients:
            await c.aclose()
        self._client.close()

    def __enter__(self) -> "WaymarkSaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "WaymarkSaver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- encoding --------------------------------------------------------------------------

    def _enc(self, value: Any) -> dict[str, str]:
        tag, data = self.serde.dumps_typed(value)
        return {"type": tag, "data": base64.b64encode(data).decode("ascii")}

    def _dec(self, value: dict[str, Any]) -> Any:
        if "json" in value and "type" not in value:
            return value["json"]
        return self.serde.loads_typed(
            (value["type"], base64.b64decode(value.get("data") or ""))
        )

    @staticmethod
    def _config(config: RunnableConfig, *, ns_default: str | None = "") -> dict[str, Any]:
        c = config.get("configurable", {})
        ns = c.get("checkpoint_ns", ns_default)
        return {
            "thread_id": str(c["thread_id"]),
            "checkpoint_ns": ns,
            "checkpoint_id": c.get("checkpoint_id"),
        }

    def _checkpoint(self, checkpoint: Checkpoint) -> dict[str, Any]:
        rest = dict(checkpoint)
        key_order = list(rest.keys())
        values = rest.pop("channel_values", {}) or {}
        body: dict[str, Any] = {
            "v": rest.pop("v"),
            "id": rest.pop("id"),
            "ts": rest.pop("ts", ""),
            "channel_versions": rest.pop("channel_versions", {}),
            "versions_seen": rest.pop("versions_seen", {}),
            "updated_channels": rest.pop("updated_channels", None),
            "channel_values": {k: self._enc(v) for k, v in values.items()},
        }
        body["extra"] = {k: self._enc(v) for k, v in rest.items()}
        body["key_order"] = key_order
        return body

    def _tuple(self, t: dict[str, Any] | None) -> CheckpointTuple | None:
        if t is None:
            return None
        cp = t["checkpoint"]
        checkpoint: dict[str, Any] = {
            "v": cp["v"],
            "ts": cp["ts"],
            "id": cp["id"],
            "channel_values": {
                k: self._dec(v) for k, v in cp.get("channel_values", {}).items()
            },
            "channel_versions": cp.get("channel_versions", {}),
            "versions_seen": cp.get("versions_seen", {}),
            "updated_channels": cp.get("updated_channels"),
        }
        for k, v in cp.get("extra", {}).items():
            checkpoint[k] = self._dec(v)
        parent = t.get("parent_config")
        return CheckpointTuple(
            config={"configurable": t["config"]},
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=t.get("metadata") or {},  # type: ignore[arg-type]
            parent_config={"configurable": parent} if parent else None,
            pending_writes=[
                (w["task_id"], w["channel"], self._dec(w["value"]))
                for w in t.get("pending_writes", [])
            ],
        )

    def _put_body(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return {
            "config": self._config(config),
            "checkpoint": self._checkpoint(checkpoint),
            "metadata": get_checkpoint_metadata(config, metadata),
            "new_versions": dict(new_versions),
        }

    def _writes_body(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> dict[str, Any]:
        return {
            "config": self._config(config),
            "writes": [{"channel": c, "value": self._enc(v)} for c, v in writes],
            "task_id": task_id,
            "task_path": task_path,
        }

    def _list_body(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> dict[str, Any]:
        wire_config = None
        if config is not None and "thread_id" in config.get("configurable", {}):
            # A missing namespace lists every namespace (compat §1.1).
            wire_config = self._config(config, ns_default=None)
        wire_before = None
        if before is not None:
            wire_before = {
                "checkpoint_id": before.get("configurable", {}).get("checkpoint_id")
            }
        return {
            "config": wire_config,
            "filter": filter,
            "before": wire_before,
            "limit": limit,
        }

    # -- sync family -----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._tuple(self._post("get_tuple", {"config": self._config(config)})["tuple"])

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        body = self._post("list", self._list_body(config, filter, before, limit))
        for t in body["tuples"]:
            yield self._tuple(t)  # type: ignore[misc]

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        body = self._post("put", self._put_body(config, checkpoint, metadata, new_versions))
        return {"configurable": body["config"]}

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._post("put_writes", self._writes_body(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._post("delete_thread", {"thread_id": str(thread_id)})

    # -- async family ----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        body = await self._apost("get_tuple", {"config": self._config(config)})
        return self._tuple(body["tuple"])

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        body = await self._apost("list", self._list_body(config, filter, before, limit))
        for t in body["tuples"]:
            yield self._tuple(t)  # type: ignore[misc]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        body = await self._apost(
            "put", self._put_body(config, checkpoint, metadata, new_versions)
        )
        return {"configurable": body["config"]}

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._apost(
            "put_writes", self._writes_body(config, writes, task_id, task_path)
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self._apost("delete_thread", {"thread_id": str(thread_id)})

    # -- versions --------------------------------------------------------------------------

    def get_next_version(self, current: str | int | float | None, channel: None) -> str:
        """The 32-digit version format of LangGraph's own savers (compat §1.7)."""
        if current is None:
            base = 0
        elif isinstance(current, (int, float)):
            base = int(current)
        else:
            base = int(str(current).split(".")[0])
        return f"{base + 1:032}.{random.random():016}"


# -- optional operations, added per advertised capability -----------------------------------


def _delete_for_runs(self: WaymarkSaver, run_ids: Sequence[str]) -> None:
    self._post("delete_for_runs", {"run_ids": [str(r) for r in run_ids]})


async def _adelete_for_runs(self: WaymarkSaver, run_ids: Sequence[str]) -> None:
    await self._apost("delete_for_runs", {"run_ids": [str(r) for r in run_ids]})


def _copy_thread(self: WaymarkSaver, source_thread_id: str, target_thread_id: str) -> None:
    self._post(
        "copy_thread",
        {"source_thread_id": str(source_thread_id), "target_thread_id": str(target_thread_id)},
    )


async def _acopy_thread(
    self: WaymarkSaver, source_thread_id: str, target_thread_id: str
) -> None:
    await self._apost(
        "copy_thread",
        {"source_thread_id": str(source_thread_id), "target_thread_id": str(target_thread_id)},
    )


def _prune_ids(thread_ids: Sequence[str]) -> Any:
    # A bare string is refused by the server with TypeError, as the protocol requires.
    if isinstance(thread_ids, str):
        return thread_ids
    return [str(t) for t in thread_ids]


def _prune(
    self: WaymarkSaver, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
) -> None:
    self._post("prune", {"thread_ids": _prune_ids(thread_ids), "strategy": strategy})


async def _aprune(
    self: WaymarkSaver, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
) -> None:
    await self._apost("prune", {"thread_ids": _prune_ids(thread_ids), "strategy": strategy})


_OPTIONAL_METHODS = {
    "delete_for_runs": {"delete_for_runs": _delete_for_runs, "adelete_for_runs": _adelete_for_runs},
    "copy_thread": {"copy_thread": _copy_thread, "acopy_thread": _acopy_thread},
    "prune": {"prune": _prune, "aprune": _aprune},
}

_CLASSES: dict[frozenset[str], type[WaymarkSaver]] = {}


def saver_class(capabilities: Sequence[str]) -> type[WaymarkSaver]:
    """The saver class that overrides exactly the advertised optional operations."""
    offered = frozenset(c for c in capabilities if c in _OPTIONAL_METHODS)
    cls = _CLASSES.get(offered)
    if cls is None:
        namespace: dict[str, Any] = {"__module__": __name__}
        for cap in sorted(offered):
            namespace.update(_OPTIONAL_METHODS[cap])
        name = "WaymarkSaver" + "".join(
            "".join(p.title() for p in c.split("_")) for c in sorted(offered)
        )
        cls = type(name, (WaymarkSaver,), namespace)
        _CLASSES[offered] = cls
    return cls


def _check_capabilities(body: dict[str, Any]) -> dict[str, Any]:
    version = body.get("protocol_version", 1)
    if version != PROTOCOL_VERSION:
        raise WaymarkError(
            f"server speaks protocol version {version}; this client speaks {PROTOCOL_VERSION}",
            None,
            200,
        )
    return body


def _headers(token: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    out = dict(headers or {})
    if token:
        out["authorization"] = f"Bearer {token}"
    return out


def connect(
    base_url: str,
    *,
    serde: SerializerProtocol | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> WaymarkSaver:
    """A saver for the server at ``base_url`` (e.g. ``http://127.0.0.1:8787/checkpointer``)."""
    url = _base_url(base_url)
    try:
        resp = httpx.get(f"{url}/capabilities", headers=_headers(token, headers), timeout=timeout)
    except httpx.TransportError as e:
        raise ConnectionError(f"waymark capabilities: {e}") from e
    _raise_for(resp)
    caps = _check_capabilities(resp.json())
    cls = saver_class(caps.get("capabilities", []))
    return cls(url, serde=serde, token=token, timeout=timeout, headers=headers, capabilities=caps)


async def aconnect(
    base_url: str,
    *,
    serde: SerializerProtocol | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> WaymarkSaver:
    """:func:`connect` for use inside an event loop."""
    url = _base_url(base_url)
    async with httpx.AsyncClient(headers=_headers(token, headers), timeout=timeout) as c:
        try:
            resp = await c.get(f"{url}/capabilities")
        except httpx.TransportError as e:
            raise ConnectionError(f"waymark capabilities: {e}") from e
    _raise_for(resp)
    caps = _check_capabilities(resp.json())
    cls = saver_class(caps.get("capabilities", []))
    return cls(url, serde=serde, token=token, timeout=timeout, headers=headers, capabilities=caps)
