"""Side by side: LangGraph's own savers vs Waymark on the same machine, back to back.

Run through ``scripts/bench-compare`` (which prepares ``.venv`` and the release builds);
``--help`` lists the options. Subjects, in run order:

* ``lg-sqlite``: LangGraph's ``SqliteSaver`` on a file, in-process (its own durability:
  ``synchronous=FULL``, WAL);
* ``lg-sqlite-normal``: the same saver with ``PRAGMA synchronous=NORMAL`` on its connection,
  the baseline of equal durability for Waymark's native SQLite default (NORMAL);
* ``lg-postgres``: LangGraph's ``PostgresSaver`` on a scratch PostgreSQL database, in-process;
* ``wm-sqlite-full`` / ``wm-sqlite``: Waymark's Python client through ``waymark serve`` on
  native SQLite at ``synchronous=FULL`` (when the server takes ``?synchronous=full``) and at
  the server's default;
* ``wm-lg-sqlite``: the same through the server on LangGraph's SQLite layout
  (``langgraph+sqlite://``);
* ``wm-postgres`` / ``wm-lg-postgres``: the same on native PostgreSQL and on LangGraph's
  PostgreSQL layout (``langgraph+postgres://``), each in a scratch database;
* ``rust``: the Rust in-process harness (``cargo bench ... --bench stores``), read from
  ``target/bench-stores.json``.

Prints one markdown table with ratios against the LangGraph saver of equal durability and
writes ``target/bench-compare.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workloads import FULL, QUICK, Scale, run_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
USER_HEADERS = {"X-Waymark-User": "bench"}
SQLITE_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Interrupted(Exception):
    pass


def _on_signal(signum: int, _frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


# -- cleanup registry: what the shell trap also reads if this process dies hard ---------------


class Registry:
    """Servers and scratch databases this run created, also recorded in files under ``work``
    so ``scripts/bench-compare``'s trap can clean up after a hard kill."""

    def __init__(self, work: Path, pg_url: str) -> None:
        self.work = work
        self.pg_url = pg_url
        self.dbs: list[str] = []

    def add_pid(self, pid: int) -> None:
        with open(self.work / "pids", "a") as f:
            f.write(f"{pid}\n")

    def add_db(self, name: str) -> None:
        self.dbs.append(name)
        with open(self.work / "dbs", "a") as f:
            f.write(f"{name}\n")

    def drop_dbs(self) -> None:
        for db in self.dbs:
            try:
                pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            except Exception as e:  # noqa: BLE001 - report and go on cleaning
                log(f"  note: could not drop scratch database {db}: {e}")
        self.dbs.clear()


def pg_admin(url: str, *stmts: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as c:
        for s in stmts:
            c.execute(s)  # type: ignore[arg-type]


def pg_url_for(url: str, db: str) -> str:
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


@contextlib.contextmanager
def scratch_db(reg: Registry, label: str) -> Iterator[str]:
    db = f"wm_cmp_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_admin(
        reg.pg_url,
        f"CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
    )
    reg.add_db(db)
    try:
        yield pg_url_for(reg.pg_url, db)
    finally:
        try:
            pg_admin(reg.pg_url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            reg.dbs.remove(db)
        except Exception as e:  # noqa: BLE001
            log(f"  note: could not drop scratch database {db}: {e}")


@contextlib.contextmanager
def scratch_file(work: Path, label: str) -> Iterator[Path]:
    path = work / f"{label}.db"
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")


# -- sizes and durability ------------------------------------------------------------------------


def sqlite_bytes(path: Path) -> Callable[[], int | None]:
    """Page count x page size as a reader sees it (WAL content included), like the Rust
    harness."""

    def size() -> int | None:
        if not path.exists():
            return None
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            pages = c.execute("PRAGMA page_count").fetchone()[0]
            page = c.execute("PRAGMA page_size").fetchone()[0]
            return int(pages) * int(page)
        finally:
            c.close()

    return size


PG_SIZE_SQL = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""


def pg_bytes(url: str) -> Callable[[], int | None]:
    """Every table of the scratch database, with its indexes and TOAST."""

    def size() -> int | None:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as c:
            row = c.execute(PG_SIZE_SQL).fetchone()
            return int(row[0]) if row else None

    return size


def pg_durability(url: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as c:
        sc = c.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
        fs = c.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
        ver = c.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    return f"synchronous_commit={sc}, fsync={fs} (PostgreSQL {ver.split()[0]})"


# -- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(RuntimeError):
    pass


@contextlib.contextmanager
def waymark_serve(binary: str, database_url: str, reg: Registry, label: str) -> Iterator[str]:
    """`waymark serve` on a free port; yields the checkpointer base URL; stopped afterwards."""
    port = free_port()
    log_path = reg.work / f"serve-{label}.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", "--database-url", database_url, "--bind", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    reg.add_pid(proc.pid)
    base = f"http://127.0.0.1:{port}/checkpointer"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise ServerFailed(
                    f"waymark serve exited with {proc.returncode}: {tail(log_path, 1)}"
                )
            try:
                if httpx.get(f"{base}/health", timeout=1, headers=USER_HEADERS).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"waymark serve not healthy in 60 s: {tail(log_path)}")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_bytes().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


# -- subjects ------------------------------------------------------------------------------------


def run_lg_sqlite(scale: Scale, reg: Registry, synchronous: str | None = None) -> dict[str, Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    label = "lg-sqlite" if synchronous is None else f"lg-sqlite-{synchronous.lower()}"
    with scratch_file(reg.work, label) as path, SqliteSaver.from_conn_string(
        str(path)
    ) as saver:
        saver.setup()
        if synchronous is not None:
            # The saver keeps one connection; the pragma holds for its whole life.
            saver.conn.execute(f"PRAGMA synchronous={synchronous}")
        sync = saver.conn.execute("PRAGMA synchronous").fetchone()[0]
        journal = saver.conn.execute("PRAGMA journal_mode").fetchone()[0]
        durability = (
            f"synchronous={SQLITE_SYNC.get(sync, sync)}, journal_mode={str(journal).upper()} "
            "(read on the saver's own connection)"
        )
        result = run_all(saver, scale, sqlite_bytes(path), lambda m: log(f"  {m}"))
    return {"durability": durability, "checkpoints": result}


def run_lg_postgres(scale: Scale, reg: Registry) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with scratch_db(reg, "lgpg") as url, PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        durability = pg_durability(url)
        result = run_all(saver, scale, pg_bytes(url), lambda m: log(f"  {m}"))
    return {"durability": durability, "checkpoints": result}


def run_waymark(binary: str, database_url: str, scale: Scale, reg: Registry, label: str,
                bytes_fn: Callable[[], int | None]) -> dict[str, Any]:
    from waymark_checkpointer import connect

    with waymark_serve(binary, database_url, reg, label) as base:
        saver = connect(base, headers=dict(USER_HEADERS))
        try:
            result = run_all(saver, scale, bytes_fn, lambda m: log(f"  {m}"))
        finally:
            saver.close()
    return {"checkpoints": result, "database_url": redact(database_url)}


def redact(url: str) -> str:
    u = urlsplit(url)
    if u.password:
        netloc = u.netloc.replace(f":{u.password}@", ":***@")
        return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))
    return url


def run_rust(quick: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The Rust in-process harness; returns its JSON (or None and why)."""
    out = ROOT / "target" / "bench-stores.json"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    env = dict(
        os.environ,
        WAYMARK_BENCH_BACKENDS="sqlite-file,sqlite-file-full,postgres",
        WAYMARK_BENCH_SYNCHRONOUS="both",
    )
    cmd = ["cargo", "bench", "-q", "-p", "waymark-infrastructure", "--bench", "stores"]
    if quick:
        cmd += ["--", "--quick"]
    log(f"  {' '.join(cmd)}")
    rust_log = ROOT / "target" / "bench-compare-rust.log"
    with open(rust_log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=3600)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if rc != 0:
        return None, f"cargo bench exited with {rc} (log: {rust_log})"
    try:
        return json.loads(out.read_text()), None
    except (OSError, ValueError) as e:
        return None, f"could not read {out}: {e}"


# -- the table -----------------------------------------------------------------------------------

# (label, path in the checkpoints JSON, kind): "tput" higher is better, "lat"/"bytes" lower.
ROWS: list[tuple[str, tuple[str, ...], str]] = [
    ("W1 steps/s", ("w1", "steps_per_s"), "tput"),
    ("W1 put p50 ms", ("w1", "put", "p50_ms"), "lat"),
    ("W1 put_writes p50 ms", ("w1", "put_writes", "p50_ms"), "lat"),
    ("W2 get latest p50 ms", ("w2_get_latest", "p50_ms"), "lat"),
    ("W3 get by id p50 ms", ("w3_get_by_id", "p50_ms"), "lat"),
    ("W4 list limit 20 p50 ms", ("w4_list_20", "p50_ms"), "lat"),
    ("W4 full list p50 ms", ("w4_list_all", "p50_ms"), "lat"),
    ("W5 steps/s", ("w5", "steps_per_s"), "tput"),
    ("W6 steps/s", ("w6", "steps_per_s"), "tput"),
    ("bytes after W1", ("bytes", "w1_growth"), "bytes"),
]


def dig(d: Any, path: tuple[str, ...]) -> float | None:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def ratio(kind: str, waymark: float | None, langgraph: float | None) -> float | None:
    """> 1 means Waymark is better."""
    if waymark is None or langgraph is None or waymark <= 0 or langgraph <= 0:
        return None
    return langgraph / waymark if kind in ("lat", "bytes") else waymark / langgraph


def fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "–"
    if kind == "lat":
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return f"{v:,.0f}"


def columns(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Table columns in order: (key, header, data, baseline key or None, equal durability)."""
    cols: list[dict[str, Any]] = []

    def add(key: str, header: str, data: Any, base: str | None, equal: bool) -> None:
        if data is not None:
            cols.append({"key": key, "header": header, "data": data, "base": base, "equal": equal})

    subj = results["subjects"]
    add("lg-sqlite", "LangGraph SqliteSaver", subj.get("lg-sqlite", {}).get("checkpoints"), None, True)
    add("lg-sqlite-normal", "LangGraph SqliteSaver, synchronous=NORMAL",
        subj.get("lg-sqlite-normal", {}).get("checkpoints"), None, True)
    # Waymark's NORMAL columns compare with SqliteSaver at NORMAL when that ran (equal
    # durability), else with its FULL default (marked †).
    normal_base = "lg-sqlite-normal" if subj.get("lg-sqlite-normal") else "lg-sqlite"
    add("lg-postgres", "LangGraph PostgresSaver", subj.get("lg-postgres", {}).get("checkpoints"), None, True)
    for key, header, base in [
        ("wm-sqlite-full", "Waymark py→serve, SQLite FULL", "lg-sqlite"),
        ("wm-sqlite", "Waymark py→serve, SQLite NORMAL (default)", normal_base),
        ("wm-lg-sqlite", "Waymark py→serve, langgraph+sqlite", "lg-sqlite"),
        ("wm-postgres", "Waymark py→serve, PostgreSQL", "lg-postgres"),
        ("wm-lg-postgres", "Waymark py→serve, langgraph+postgres", "lg-postgres"),
    ]:
        s = subj.get(key, {})
        equal = bool(s.get("equal_durability")) or (key == "wm-sqlite" and base == "lg-sqlite-normal")
        add(key, header, s.get("checkpoints"), base, equal)
    rust = results.get("rust") or {}
    for key, header, base, equal in [
        ("sqlite-file-full", "Waymark Rust in-process, SQLite FULL", "lg-sqlite", True),
        ("sqlite-file", "Waymark Rust in-process, SQLite NORMAL (default)", normal_base,
         normal_base == "lg-sqlite-normal"),
        ("postgres", "Waymark Rust in-process, PostgreSQL", "lg-postgres", True),
    ]:
        data = (rust.get(key) or {}).get("checkpoints")
        add(f"rust-{key}", header, data, base, equal)
    return cols


def render(results: dict[str, Any]) -> str:
    cols = columns(results)
    by_key = {c["key"]: c for c in cols}
    lines = []
    lines.append("| workload | " + " | ".join(c["header"] for c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for label, path, kind in ROWS:
        cells = []
        for c in cols:
            v = dig(c["data"], path)
            cell = fmt(v, kind)
            base = by_key.get(c["base"]) if c["base"] else None
            if base is not None:
                r = ratio(kind, v, dig(base["data"], path))
                if r is not None:
                    cell += f" ({r:.2f}×)" if c["equal"] else f" ({r:.2f}×†)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def durability_notes(results: dict[str, Any]) -> list[str]:
    out = []
    for key, s in results["subjects"].items():
        if "durability" in s:
            out.append(f"- `{key}`: {s['durability']}")
    for n in results.get("notes", []):
        out.append(f"- note: {n}")
    return out


# -- main ----------------------------------------------------------------------------------------

ALL = ["lg-sqlite", "lg-sqlite-normal", "lg-postgres", "wm-sqlite-full", "wm-sqlite", "wm-lg-sqlite",
       "wm-postgres", "wm-lg-postgres", "rust"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small scale of the Rust harness's --quick")
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "waymark"))
    ap.add_argument("--pg-url", default=os.environ.get(
        "WAYMARK_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--work", help="scratch folder (default: a new temporary one)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench-compare.json"))
    ap.add_argument("--render", metavar="JSON", help="only print the table of an earlier run's JSON")
    args = ap.parse_args()

    if args.render:
        results = json.loads(Path(args.render).read_text())
        print(render(results))
        print()
        print("\n".join(durability_notes(results)))
        return 0

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    only = [s for s in args.only.split(",") if s]
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        ap.error(f"unknown subjects {unknown}")
    scale = QUICK if args.quick else FULL
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="waymark-bench-compare."))
    work.mkdir(parents=True, exist_ok=True)
    reg = Registry(work, args.pg_url)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "scale": scale.__dict__,
        "machine": machine(),
        "subjects": {},
        "notes": [],
        "failed": [],
    }
    subj = results["subjects"]
    ok = True
    try:
        pg_ok = True
        try:
            pg_admin(args.pg_url, "SELECT 1")
        except Exception as e:  # noqa: BLE001
            pg_ok = False
            results["notes"].append(f"no PostgreSQL at {redact(args.pg_url)} ({e}); PostgreSQL subjects not run")
        sync_full_supported: bool | None = None
        for name in only:
            if name == "rust":
                continue
            if name.endswith("postgres") and not pg_ok:
                results["failed"].append(name)
                continue
            log(f"==> {name}")
            t0 = time.monotonic()
            try:
                if name == "lg-sqlite":
                    subj[name] = run_lg_sqlite(scale, reg)
                elif name == "lg-sqlite-normal":
                    subj[name] = run_lg_sqlite(scale, reg, "NORMAL")
                elif name == "lg-postgres":
                    subj[name] = run_lg_postgres(scale, reg)
                elif name in ("wm-sqlite-full", "wm-sqlite", "wm-lg-sqlite"):
                    with scratch_file(work, name) as path:
                        if name == "wm-lg-sqlite":
                            url = f"langgraph+sqlite://{path}"
                            dur = "synchronous=FULL (sqlx default), journal_mode=WAL: LangGraph layout in the server"
                            equal = True
                        elif name == "wm-sqlite":
                            url = f"sqlite://{path}"
                            dur = "the server's default for native SQLite (synchronous=NORMAL, journal_mode=WAL, as documented in infrastructure/src/connect.rs)"
                            equal = False
                        else:
                            url = with_query(f"sqlite://{path}", "synchronous=full")
                            dur = "synchronous=FULL (`?synchronous=full`), journal_mode=WAL"
                            equal = True
                        try:
                            r = run_waymark(args.binary, url, scale, reg, name, sqlite_bytes(path))
                            if name == "wm-sqlite-full":
                                sync_full_supported = True
                        except ServerFailed as e:
                            if name != "wm-sqlite-full":
                                raise
                            sync_full_supported = False
                            msg = ("the server does not take `?synchronous=full` in a sqlite:// URL "
                                   f"({str(e)[-160:]}); native SQLite through the server ran at the "
                                   "server's default only (†: not LangGraph's durability)")
                            log(f"  note: {msg}")
                            results["notes"].append(msg)
                            continue
                        r["durability"] = dur
                        r["equal_durability"] = equal
                        subj[name] = r
                else:  # wm-postgres, wm-lg-postgres
                    with scratch_db(reg, name.replace("-", "_")) as url:
                        db_url = url if name == "wm-postgres" else f"langgraph+{url}"
                        r = run_waymark(args.binary, db_url, scale, reg, name, pg_bytes(url))
                        r["durability"] = pg_durability(url)
                        r["equal_durability"] = True
                        subj[name] = r
                subj.get(name, {})["seconds"] = round(time.monotonic() - t0, 1)
                log(f"  done in {time.monotonic() - t0:.0f} s")
            except (Interrupted, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - a failing subject is reported, others run
                ok = False
                results["failed"].append(name)
                results["notes"].append(f"{name} FAILED: {type(e).__name__}: {e}")
                log(f"  FAILED: {type(e).__name__}: {e}")
        results["sqlite_synchronous_full_in_url"] = sync_full_supported
        if "rust" in only:
            log("==> rust (cargo bench, in-process)")
            t0 = time.monotonic()
            rust, why = run_rust(args.quick)
            if rust is None:
                ok = False
                results["failed"].append("rust")
                results["notes"].append(f"rust FAILED: {why}")
                log(f"  FAILED: {why}")
            else:
                results["rust"] = rust
                if "sqlite-file-full" not in rust and "sqlite-file" in rust:
                    results["notes"].append(
                        "the Rust harness has no `sqlite-file-full` column (WAYMARK_BENCH_SYNCHRONOUS "
                        "not supported yet); its SQLite figures are at the default synchronous=NORMAL (†)")
                results["rust_seconds"] = round(time.monotonic() - t0, 1)
                log(f"  done in {time.monotonic() - t0:.0f} s")
    except (Interrupted, KeyboardInterrupt) as e:
        log(f"interrupted ({e}); cleaning up")
        ok = False
        results["notes"].append(f"interrupted: {e}")
    finally:
        reg.drop_dbs()
    results["seconds"] = round(time.monotonic() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print()
    print(f"Side by side, {results['date']}, {'quick' if args.quick else 'full'} run "
          f"({results['seconds']:.0f} s); {results['machine']['summary']}")
    print()
    print(render(results))
    print()
    print("Ratios in brackets: vs the LangGraph saver of the same database (SQLite vs SqliteSaver, "
          "PostgreSQL vs PostgresSaver); > 1 means Waymark is better (throughput: waymark/langgraph; "
          "latency and bytes: langgraph/waymark). † = not equal durability (Waymark at synchronous=NORMAL "
          "vs SqliteSaver at FULL).")
    print()
    print("Durability:")
    print("\n".join(durability_notes(results)))
    print(f"\nwrote {out}")
    return 0 if ok else 1


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    load = os.getloadavg()
    cpus = os.cpu_count()
    summary = (f"{cpus} CPUs ({cpu}), {mem} GiB RAM, load average {load[0]:.2f} at start, "
               f"Python {platform.python_version()}")
    return {"cpus": cpus, "cpu": cpu, "mem_gib": mem, "load_at_start": load, "summary": summary}


if __name__ == "__main__":
    sys.exit(main())
