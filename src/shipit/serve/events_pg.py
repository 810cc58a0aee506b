"""The event store in PostgreSQL: SQLite's tables and guarantees, shared by router replicas on several hosts.

Hot path: each request awaits its row's commit before the client sees the end of its answer, as with SQLite. A
single writer task per router takes every row queued since its last round trip and commits them in one
transaction (group commit), so a burst costs one round trip, not one per request. Rows are committed with
`synchronous_commit = off`: the server has them once the commit returns (a killed router loses nothing), and only
a crash of the database server itself may lose its last fraction of a second, as an OS crash may with SQLite's
`synchronous = NORMAL`. Decisions keep the server's default (flushed to disk).

When the server is unreachable the router answers 503 (`StoreUnavailable`) instead of serving answers it cannot
record: nothing is buffered. The writer retries every `RETRY_S` and the router serves again as soon as it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

from shipit.errors import UserError
from shipit.serve.events import COLUMNS, INSERT, QUOTED, UPSERT_PAYLOAD, StoreUnavailable, rate

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  id TEXT PRIMARY KEY, ts DOUBLE PRECISION, experiment TEXT, arm TEXT, bucket INTEGER, "user" TEXT, forced INTEGER,
  shadow INTEGER, epoch BIGINT, endpoint TEXT, stream INTEGER, status INTEGER, error TEXT,
  latency_ms DOUBLE PRECISION, ttft_ms DOUBLE PRECISION, prompt_tokens INTEGER, completion_tokens INTEGER,
  replica TEXT, rowid BIGSERIAL);
CREATE INDEX IF NOT EXISTS requests_experiment ON requests (experiment, rowid);
CREATE TABLE IF NOT EXISTS feedback (request_id TEXT, ts DOUBLE PRECISION, score DOUBLE PRECISION,
  rowid BIGSERIAL);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id, rowid);
CREATE TABLE IF NOT EXISTS payloads (request_id TEXT PRIMARY KEY, ts DOUBLE PRECISION, prompt TEXT, answer TEXT);
CREATE TABLE IF NOT EXISTS decisions (
  id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION, experiment TEXT, kind TEXT, weights TEXT, reason TEXT,
  numbers TEXT);
"""
# `rowid` columns give PostgreSQL SQLite's implicit arrival order, so the statistics' queries run unchanged.
SCHEMA_LOCK = 0x5368697074  # advisory lock key: replicas starting together create the tables one at a time
CONNECT_TIMEOUT_S = 3
RETRY_S = 0.5
MAX_BATCH = 256  # rows per commit; 18 parameters a row stays far below PostgreSQL's 65,535


def where(dsn: str) -> str:
    """host:port/db of a DSN, for messages (never its password)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        d = conninfo_to_dict(dsn)
    except Exception:
        return "the configured DSN"
    return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', d.get('user', ''))}"


class PgConn:
    """A psycopg connection that runs the SQLite queries of events.py and stats.py (`?` placeholders), reconnects
    after the server went away, and raises StoreUnavailable while it is gone."""

    def __init__(self, dsn: str, create: bool = True):
        self.dsn, self.raw = dsn, None
        try:
            self._connect()
        except StoreUnavailable as exc:
            raise UserError(f"events: {exc}; start the server or fix `events`/`events_env`") from None
        if create:
            with self.raw.transaction():
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self.raw.execute(SCHEMA)

    def _connect(self) -> None:
        import psycopg

        try:
            self.raw = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL at {where(self.dsn)}: "
                                   f"{str(exc).strip().splitlines()[-1]}") from None

    def execute(self, sql: str, params=()):
        import psycopg

        if self.raw is None or self.raw.closed:
            self._connect()
        try:
            return self.raw.execute(sql.replace("?", "%s"), params)
        except psycopg.OperationalError as exc:
            self.raw.close()
            raise StoreUnavailable(f"PostgreSQL at {where(self.dsn)}: {str(exc).strip()}") from None

    def executemany(self, sql: str, rows) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    @contextlib.contextmanager
    def exclusive(self, key: str):
        """A transaction holding the advisory lock `key` (released at commit or rollback)."""
        if self.raw is None or self.raw.closed:
            self._connect()
        with self.raw.transaction():
            self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
            yield

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


def values(n: int, width: int) -> str:
    """`(%s, ...), (%s, ...)`: n rows of `width` parameters."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


class PgEventStore:
    """The router's writer: group-committed event rows on a connection of its own, control-plane calls on another
    in one thread (a round trip must not stall the event loop; one thread keeps their transactions apart)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn = PgConn(dsn)
        self.down: str | None = None  # why the server is unreachable, while it is
        self.pending: list[tuple[tuple, tuple | None, asyncio.Future]] = []  # (row, payload, its future)
        self.busy = False
        self._aconn = None
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._control = ThreadPoolExecutor(1, thread_name_prefix="shipit-events")

    @property
    def available(self) -> bool:
        """False while the server is known to be unreachable (the router answers 503 without calling upstream)."""
        return self.down is None

    async def arecord(self, row: dict, text: tuple | None = None) -> None:
        """Commit one request's row, with its (prompt, answer) when recording text, in one transaction; raises
        StoreUnavailable when it could not be committed."""
        import json

        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.ensure_future(self._writer())
        fut = asyncio.get_running_loop().create_future()
        payload = None if text is None else (row["id"], time.time(), json.dumps(text[0]), text[1])
        self.pending.append((tuple(row.get(c) for c in COLUMNS), payload, fut))
        self._wake.set()
        await fut

    async def _writer(self) -> None:
        import psycopg

        while True:
            if not self.pending:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_S if self.down else None)
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            self.busy = True
            try:
                if self._aconn is None:
                    self._aconn = await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                        options="-c synchronous_commit=off")
                await self._write(batch)
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                why = (str(exc).strip() or type(exc).__name__).splitlines()[-1]
                self.down = f"PostgreSQL at {where(self.dsn)}: {why}"
                if self._aconn is not None:
                    with contextlib.suppress(Exception):
                        await self._aconn.close()
                self._aconn = None
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreUnavailable(self.down))
            except Exception as exc:  # a row the server refused: that batch fails (never hangs), the store is not down
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                self.down = None
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
            finally:
                self.busy = False

    async def _write(self, batch) -> None:
        rows = [r for r, _, _ in batch]
        payloads = {p[0]: p for _, p, _ in batch if p is not None}  # one row per request id in a statement
        conn = self._aconn
        if not batch:  # a probe while the server is down
            await conn.execute("SELECT 1")
            return
        insert = (f"INSERT INTO requests ({', '.join(QUOTED)}) VALUES {values(len(rows), len(COLUMNS))}",
                  [x for r in rows for x in r])
        if not payloads:  # one statement is its own transaction: one round trip (0.05 ms here, 0.24 ms pipelined)
            await conn.execute(*insert)
            return
        async with conn.pipeline(), conn.transaction():
            if rows:
                await conn.execute(*insert)
            await conn.execute(UPSERT_PAYLOAD.format(values=values(len(payloads), 4)),
                               [x for p in payloads.values() for x in p])

    async def run(self, fn, *args):
        """Run a control-plane call (`fn(*args)`, on `self.conn`) in the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._control, fn, *args)

    def rate(self, request_id: str, score: float) -> str | None:
        """Append feedback for a recorded request and return its arm; None for an unknown id."""
        return rate(self.conn, request_id, score)

    # Used by tests and tools outside a router.
    def record(self, row: dict) -> None:
        self.conn.execute(INSERT, tuple(row.get(c) for c in COLUMNS))

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Commit what is queued (for at most `timeout_s`), then close both connections."""
        deadline = time.monotonic() + timeout_s
        while (self.pending or self.busy) and self.down is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
        if self._aconn is not None:
            with contextlib.suppress(Exception):
                await self._aconn.close()
        self.close()

    def close(self) -> None:
        self._control.shutdown(wait=False)
        self.conn.close()
