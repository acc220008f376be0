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
import socket
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import ormsgpack
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
    "MSGPACK",
    "PROTOCOL_VERSION",
    "WaymarkError",
    "WaymarkSaver",
    "aconnect",
    "connect",
    "saver_class",
]

PROTOCOL_VERSION = 1

#: The media type of the msgpack addendum (docs/checkpointer-msgpack.md).
MSGPACK = "application/vnd.waymark.checkpointer+msgpack"
_JSON = "application/json; charset=utf-8"

#: The optional operations a server may advertise, with the methods each one adds.
OPTIONAL_OPERATIONS = ("delete_for_runs", "copy_thread", "prune")

#: Accepted values of the ``encoding`` argument.
ENCODINGS = ("auto", "msgpack", "json")


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


# -- bodies --------------------------------------------------------------------------------

def _b64(o: Any) -> str:
    # Values carry raw bytes; protocol v1 JSON sends them as base64 (§3.1).
    if isinstance(o, (bytes, bytearray, memoryview)):
        return base64.b64encode(o).decode("ascii")
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _dumps_json(body: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON, and the server would refuse it less clearly.
    return json.dumps(body, ensure_ascii=False, allow_nan=False, default=_b64).encode("utf-8")


def _encode(body: dict[str, Any], binary: bool) -> tuple[bytes, str]:
    """The request body and its content type: msgpack when the server speaks it, else JSON
    (also for a body msgpack cannot carry, such as an integer beyond 64 bits)."""
    if binary:
        try:
            return ormsgpack.packb(body), MSGPACK
        except (ormsgpack.MsgpackEncodeError, TypeError, OverflowError):
            pass
    return _dumps_json(body), _JSON


def _decode(data: bytes, content_type: str) -> Any:
    if content_type.split(";", 1)[0].strip().lower() == MSGPACK:
        return ormsgpack.unpackb(data)
    return json.loads(data) if data else None


def _raise_for(status: int, reason: str, content_type: str, data: bytes) -> None:
    try:
        body = _decode(data, content_type)
        message, kind = str(body.get("error")), body.get("kind")
    except Exception:  # noqa: BLE001 - a proxy's HTML error page, say
        message, kind = data.decode("utf-8", "replace") or reason, None
    exc = _KINDS.get(kind or "")
    if exc is None:
        raise WaymarkError(f"{status}: {message}", kind, status)
    raise exc(message)


def _base_url(url: str) -> str:
    return url.rstrip("/")


# -- transport -----------------------------------------------------------------------------
#
# One HTTP/1.1 request per saver call over kept-alive connections, written and parsed here:
# a fixed request head, Content-Length or chunked answers. A connection is used by one call
# at a time (idle connections wait in a pool); a connection the server closed while idle is
# replaced and the call retried once, which the protocol allows (every operation is
# idempotent, §2).


class _Target:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"waymark: base URL must be http:// or https://, not {base_url!r}")
        self.tls = u.scheme == "https"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.tls else 80)
        self.prefix = u.path.rstrip("/")
        default_port = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        hostport = host if self.port == default_port else f"{host}:{self.port}"
        lines = [f"Host: {hostport}"]
        for k, v in headers.items():
            if any(c in f"{k}{v}" for c in "\r\n\0") or ":" in k:
                raise ValueError(f"waymark: invalid header {k!r}")
            if k.lower() in ("host", "content-length", "content-type", "connection"):
                continue
            lines.append(f"{k}: {v}")
        self.extra = ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def head(self, method: str, op: str, content_type: str | None, length: int) -> bytes:
        h = f"{method} {self.prefix}/{op} HTTP/1.1\r\n".encode("latin-1") + self.extra
        if content_type is not None:
            h += f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n".encode("latin-1")
        return h + b"\r\n"


class _Answer:
    __slots__ = ("status", "reason", "content_type", "data", "keep")

    def __init__(self, status: int, reason: str, content_type: str, data: bytes, keep: bool) -> None:
        self.status = status
        self.reason = reason
        self.content_type = content_type
        self.data = data
        self.keep = keep


def _parse_head(lines: list[bytes]) -> tuple[int, str, dict[str, str]]:
    parts = lines[0].decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ConnectionError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2].strip() if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return status, reason, headers


class _Closed(ConnectionError):
    """The server closed the connection before answering."""


class _SyncConn:
    def __init__(self, target: _Target, timeout: float) -> None:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        self.sock = sock
        self.rfile = sock.makefile("rb")

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def exchange(self, head: bytes, body: bytes | None) -> _Answer:
        self.sock.sendall(head + body if body else head)
        rf = self.rfile
        lines = []
        while True:
            line = rf.readline(65537)
            if not line:
                if not lines:
                    raise _Closed("the server closed the connection")
                raise ConnectionError("the server closed the connection mid-answer")
            line = line.rstrip(b"\r\n")
            if not line:
                if lines:
                    break
                continue
            lines.append(line)
        status, reason, headers = _parse_head(lines)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(rf.readline(1024).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while rf.readline(65537).strip():
                        pass
                    break
                chunks.append(_read_exact(rf, size))
                rf.readline(8)
            data = b"".join(chunks)
        else:
            data = _read_exact(rf, int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close"
        return _Answer(status, reason, headers.get("content-type", ""), data, keep)


def _read_exact(rf: Any, n: int) -> bytes:
    data = rf.read(n) if n else b""
    if len(data) != n:
        raise ConnectionError("the server closed the connection mid-answer")
    return data


class _SyncTransport:
    def __init__(self, target: _Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._idle: list[_SyncConn] = []
        self._lock = threading.Lock()

    def request(self, method: str, op: str, body: bytes | None, content_type: str | None) -> _Answer:
        head = self.target.head(method, op, content_type, len(body) if body is not None else 0)
        for attempt in range(2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = _SyncConn(self.target, self.timeout)
                answer = conn.exchange(head, body)
            except (_Closed, BrokenPipeError, ConnectionResetError) as e:
                if conn is not None:
                    conn.close()
                if reused and attempt == 0:
                    continue
                raise ConnectionError(f"waymark {op}: {e}") from e
            except TimeoutError as e:
                if conn is not None:
                    conn.close()
                raise TimeoutError(f"waymark {op}: {e}") from e
            except (OSError, ValueError) as e:
                if conn is not None:
                    conn.close()
                raise ConnectionError(f"waymark {op}: {e}") from e
            if answer.keep:
                with self._lock:
                    self._idle.append(conn)
            else:
                conn.close()
            return answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


class _AsyncConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: _Target) -> "_AsyncConn":
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            ssl=ssl.create_default_context() if target.tls else None,
            limit=1 << 20,
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def close(self) -> None:
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass

    async def exchange(self, head: bytes, body: bytes | None) -> _Answer:
        self.writer.write(head + body if body else head)
        await self.writer.drain()
        rd = self.reader
        try:
            raw = await rd.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise _Closed("the server closed the connection") from e
            raise ConnectionError("the server closed the connection mid-answer") from e
        status, reason, headers = _parse_head(raw.rstrip(b"\r\n").split(b"\r\n"))
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int((await rd.readline()).split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while (await rd.readline()).strip():
                            pass
                        break
                    chunks.append(await rd.readexactly(size))
                    await rd.readline()
                data = b"".join(chunks)
            else:
                n = int(headers.get("content-length", "0"))
                data = await rd.readexactly(n) if n else b""
        except asyncio.IncompleteReadError as e:
            raise ConnectionError("the server closed the connection mid-answer") from e
        keep = headers.get("connection", "").lower() != "close"
        return _Answer(status, reason, headers.get("content-type", ""), data, keep)


class _AsyncTransport:
    """Connections belong to the event loop that opened them; idle ones are kept per loop."""

    def __init__(self, target: _Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_AsyncConn]] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self, loop: asyncio.AbstractEventLoop) -> list[_AsyncConn]:
        try:
            return self._idle.setdefault(loop, [])
        except TypeError:  # a loop type without weak references
            self._idle = dict(self._idle)  # type: ignore[assignment]
            return self._idle.setdefault(loop, [])

    async def request(
        self, method: str, op: str, body: bytes | None, content_type: str | None
    ) -> _Answer:
        head = self.target.head(method, op, content_type, len(body) if body is not None else 0)
        idle = self._pool(asyncio.get_running_loop())
        for attempt in range(2):
            conn = idle.pop() if idle else None
            reused = conn is not None
            try:
                async with _deadline(self.timeout):
                    if conn is None:
                        conn = await _AsyncConn.open(self.target)
                    answer = await conn.exchange(head, body)
            except (_Closed, BrokenPipeError, ConnectionResetError) as e:
                if conn is not None:
                    conn.close()
                if reused and attempt == 0:
                    continue
                raise ConnectionError(f"waymark {op}: {e}") from e
            except (TimeoutError, asyncio.TimeoutError) as e:
                if conn is not None:
                    conn.close()
                raise TimeoutError(f"waymark {op}: timed out after {self.timeout} s") from e
            except (OSError, ValueError, asyncio.LimitOverrunError) as e:
                if conn is not None:
                    conn.close()
                raise ConnectionError(f"waymark {op}: {e}") from e
            except BaseException:
                # Cancelled mid-exchange: the connection's state is unknown.
                if conn is not None:
                    conn.close()
                raise
            if answer.keep:
                idle.append(conn)
            else:
                conn.close()
            return answer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pools, self._idle = list(self._idle.values()), weakref.WeakKeyDictionary()
        for pool in pools:
            for c in pool:
                c.close()

    def close_nowait(self) -> None:
        pools, self._idle = list(self._idle.values()), weakref.WeakKeyDictionary()
        for pool in pools:
            for c in pool:
                c.close()


if hasattr(asyncio, "timeout"):
    _deadline = asyncio.timeout
else:  # Python 3.10
    import contextlib

    @contextlib.asynccontextmanager
    async def _deadline(seconds: float):  # type: ignore[no-redef]
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        handle = loop.call_later(seconds, task.cancel) if task else None
        try:
            yield
        except asyncio.CancelledError as e:
            raise TimeoutError from e
        finally:
            if handle:
                handle.cancel()


def _wants_binary(encoding: str, capabilities: dict[str, Any]) -> bool:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
    if encoding == "json":
        return False
    offered = MSGPACK in capabilities.get("content_types", ())
    if encoding == "msgpack" and not offered:
        raise WaymarkError("the server does not speak the msgpack encoding", None, 200)
    return offered


class WaymarkSaver(BaseCheckpointSaver[str]):
    """The base operations of the protocol. Prefer :func:`connect`, which adds the optional
    operations the server advertises and picks msgpack bodies when the server speaks them."""

    def __init__(
        self,
        base_url: str,
        *,
        serde: SerializerProtocol | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
        capabilities: dict[str, Any] | None = None,
        encoding: str = "auto",
    ) -> None:
        super().__init__(serde=serde)
        self.base_url = _base_url(base_url)
        self._headers = _headers(token, headers)
        self._timeout = timeout
        self.capabilities = capabilities or {}
        self.binary = _wants_binary(encoding, self.capabilities)
        accept = f"{MSGPACK}, application/json;q=0.5" if self.binary else "application/json"
        sent = {k: v for k, v in self._headers.items() if k.lower() != "accept"}
        target = _Target(self.base_url, {**sent, "Accept": accept})
        self._sync = _SyncTransport(target, timeout)
        self._async = _AsyncTransport(target, timeout)

    # -- transport -------------------------------------------------------------------------

    def _post(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        data, ctype = _encode(body, self.binary)
        a = self._sync.request("POST", op, data, ctype)
        if not 200 <= a.status < 300:
            _raise_for(a.status, a.reason, a.content_type, a.data)
        return _decode(a.data, a.content_type)

    async def _apost(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        data, ctype = _encode(body, self.binary)
        a = await self._async.request("POST", op, data, ctype)
        if not 200 <= a.status < 300:
            _raise_for(a.status, a.reason, a.content_type, a.data)
        return _decode(a.data, a.content_type)

    def close(self) -> None:
        """Closes the kept-alive connections."""
        self._sync.close()
        self._async.close_nowait()

    async def aclose(self) -> None:
        """Closes every kept-alive connection of this saver."""
        await self._async.close()
        self._sync.close()

    def __enter__(self) -> "WaymarkSaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "WaymarkSaver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- encoding --------------------------------------------------------------------------

    def _enc(self, value: Any) -> dict[str, Any]:
        # Raw bytes: msgpack sends them as bin, the JSON encoder as base64 (_b64).
        tag, data = self.serde.dumps_typed(value)
        return {"type": tag, "data": data}

    def _dec(self, value: dict[str, Any]) -> Any:
        if "json" in value and "type" not in value:
            return value["json"]
        data = value.get("data") or b""
        if isinstance(data, str):
            data = base64.b64decode(data)
        return self.serde.loads_typed((value["type"], data))

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


def _capabilities(a: _Answer) -> dict[str, Any]:
    if not 200 <= a.status < 300:
        _raise_for(a.status, a.reason, a.content_type, a.data)
    return _check_capabilities(_decode(a.data, a.content_type))


def connect(
    base_url: str,
    *,
    serde: SerializerProtocol | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
    encoding: str = "auto",
) -> WaymarkSaver:
    """A saver for the server at ``base_url`` (e.g. ``http://127.0.0.1:8787/checkpointer``).

    ``encoding``: ``"auto"`` (msgpack bodies when the server advertises them, JSON
    otherwise), ``"msgpack"`` (required) or ``"json"`` (protocol v1 JSON only)."""
    url = _base_url(base_url)
    transport = _SyncTransport(_Target(url, _headers(token, headers)), timeout)
    try:
        caps = _capabilities(transport.request("GET", "capabilities", None, None))
    finally:
        transport.close()
    cls = saver_class(caps.get("capabilities", []))
    return cls(
        url, serde=serde, token=token, timeout=timeout, headers=headers,
        capabilities=caps, encoding=encoding,
    )


async def aconnect(
    base_url: str,
    *,
    serde: SerializerProtocol | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
    encoding: str = "auto",
) -> WaymarkSaver:
    """:func:`connect` for use inside an event loop."""
    url = _base_url(base_url)
    transport = _AsyncTransport(_Target(url, _headers(token, headers)), timeout)
    try:
        caps = _capabilities(await transport.request("GET", "capabilities", None, None))
    finally:
        await transport.close()
    cls = saver_class(caps.get("capabilities", []))
    return cls(
        url, serde=serde, token=token, timeout=timeout, headers=headers,
        capabilities=caps, encoding=encoding,
    )
