"""The experiment record: every assignment with its outcome, feedback and decision, appended to SQLite (WAL).

The same tables live in PostgreSQL when `events` is a DSN (events_pg.py); the queries here are written once for
both: `?` placeholders (the PostgreSQL connection translates them), `RETURNING id`, `ON CONFLICT`, and a quoted
"user" (a reserved word there).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from shipit.serve.config import is_dsn

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  id TEXT PRIMARY KEY, ts REAL, experiment TEXT, arm TEXT, bucket INTEGER, user TEXT, forced INTEGER,
  shadow INTEGER, epoch INTEGER, endpoint TEXT, stream INTEGER, status INTEGER, error TEXT, latency_ms REAL,
  ttft_ms REAL, prompt_tokens INTEGER, completion_tokens INTEGER, replica TEXT);
CREATE TABLE IF NOT EXISTS feedback (request_id TEXT, ts REAL, score REAL);
CREATE TABLE IF NOT EXISTS payloads (request_id TEXT PRIMARY KEY, ts REAL, prompt TEXT, answer TEXT);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, experiment TEXT, kind TEXT, weights TEXT, reason TEXT,
  numbers TEXT);
"""
COLUMNS = ("id", "ts", "experiment", "arm", "bucket", "user", "forced", "shadow", "epoch", "endpoint", "stream",
           "status", "error", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "replica")
QUOTED = tuple('"user"' if c == "user" else c for c in COLUMNS)
INSERT = f"INSERT INTO requests ({', '.join(QUOTED)}) VALUES ({', '.join('?' * len(COLUMNS))})"
UPSERT_PAYLOAD = ("INSERT INTO payloads (request_id, ts, prompt, answer) VALUES {values} ON CONFLICT (request_id) "
                  "DO UPDATE SET ts = excluded.ts, prompt = excluded.prompt, answer = excluded.answer")
INSERT_FEEDBACK = "INSERT INTO feedback (request_id, ts, score) VALUES (?, ?, ?)"


class StoreUnavailable(Exception):
    """The event store cannot be reached; the router answers 503 rather than serve what it cannot record."""


def connect(target: str | Path):
    """A connection to the event store `target` (a SQLite path or a PostgreSQL DSN), tables created."""
    if is_dsn(target):
        from shipit.serve.events_pg import PgConn

        return PgConn(str(target))
    return connect_sqlite(target)


def open_store(target: str | Path, checkpoint_s: float | None = None):
    """The router's writer for `target`: EventStore (SQLite) or PgEventStore (PostgreSQL)."""
    if is_dsn(target):
        from shipit.serve.events_pg import PgEventStore

        return PgEventStore(str(target))
    return EventStore(target, checkpoint_s)


class _StoreConnection(sqlite3.Connection):
    def close(self) -> None:
        """Close, leaving WAL mode first when no other connection has the file open: a read-only reader of a WAL
        database (the report, pair mining, `shipit ab status`) creates -wal and -shm files and leaves them, inside a
        finished stage's output, where a rerun of the stage found files it had not written. The next writer turns
        WAL on again."""
        try:
            self.execute("PRAGMA busy_timeout=0")
            self.execute("PRAGMA journal_mode=DELETE")  # fails while another connection has the file open
        except sqlite3.Error:
            pass
        super().close()


def connect_sqlite(path: str | Path) -> sqlite3.Connection:
    """Open (and create) the event store in WAL mode; each write is its own committed transaction."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10,
                           factory=_StoreConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a committed row survives the process being killed (only an OS crash can lose it).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


class EventStore:
    """Append-only writer used by the router; commits each row before the response is finished.

    Checkpoints (copying the WAL into the database, with an fsync) run in a thread of their own every
    `checkpoint_s`, never inside a commit on the event loop, where one slow fsync would stall every request.
    """

    def __init__(self, path: str | Path, checkpoint_s: float | None = None):
        self.path = Path(path)
        self.conn = connect_sqlite(path)
        self.available = True  # a local file: the router never answers 503 for it
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if checkpoint_s:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = threading.Thread(target=self._checkpoints, args=(checkpoint_s,), daemon=True)
            self._checkpointer.start()

    def _checkpoints(self, every: float) -> None:
        conn = connect_sqlite(self.path)
        while not self._stop.wait(every):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.close()

    def record(self, row: dict) -> None:
        """Append one request's assignment and outcome."""
        self.conn.execute(INSERT, tuple(row.get(c) for c in COLUMNS))

    def payload(self, request_id: str, prompt, answer: str | None) -> None:
        """Store what a request asked (chat messages or a completion prompt, as JSON) and the answer text."""
        self.conn.execute(UPSERT_PAYLOAD.format(values="(?, ?, ?, ?)"),
                          (request_id, time.time(), json.dumps(prompt), answer))

    # The router's interface, shared with PgEventStore: a SQLite commit takes microseconds, so it runs inline.
    async def arecord(self, row: dict, text: tuple | None = None) -> None:
        """`record` (and `payload(row id, *text)` when recording text), awaited before the client sees its answer."""
        if text is not None:
            self.payload(row["id"], *text)
        self.record(row)

    async def run(self, fn, *args):
        """Run a control-plane call (`fn(*args)`) on the store's connection."""
        return fn(*args)

    async def aclose(self) -> None:
        self.close()

    def rate(self, request_id: str, score: float) -> str | None:
        """Append feedback for a recorded request and return its arm; None (nothing written) for an unknown id."""
        return rate(self.conn, request_id, score)

    def has_request(self, request_id: str) -> bool:
        """Whether a request with this id was recorded."""
        return self.conn.execute("SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone() is not None

    def feedback(self, request_id: str, score: float) -> None:
        """Append a feedback score in [0, 1] for a request."""
        self.conn.execute(INSERT_FEEDBACK, (request_id, time.time(), score))

    def close(self) -> None:
        """Close both connections before returning: the last one to close removes the -wal and -shm files, and a stage
        that hashes its output once the store is closed must not see them vanish (a checkpoint thread closing its own
        connection a moment later once failed an experiment stage with FileNotFoundError on events.sqlite-shm)."""
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(30)
        self.conn.close()


def rate(conn, request_id: str, score: float) -> str | None:
    """Append feedback for a recorded request and return its arm; None (nothing written) for an unknown id."""
    row = conn.execute("SELECT arm FROM requests WHERE id = ?", (request_id,)).fetchone()
    if row is not None:
        conn.execute(INSERT_FEEDBACK, (request_id, time.time(), score))
    return row[0] if row else None


def record_decision(conn, experiment: str, kind: str, weights: dict[str, float],
                    reason: str, numbers: dict | None = None) -> int:
    """Log a decision (weights change, promote, rollback, reload) with the numbers behind it; returns its id."""
    cur = conn.execute("INSERT INTO decisions (ts, experiment, kind, weights, reason, numbers) VALUES (?,?,?,?,?,?) "
                       "RETURNING id", (time.time(), experiment, kind, json.dumps(weights), reason,
                                        json.dumps(numbers or {}, default=float)))
    return int(cur.fetchone()[0])


@contextlib.contextmanager
def exclusive(conn, experiment: str):
    """A transaction that no other writer of `experiment`'s decisions runs beside, on this or any other replica:
    SQLite's write lock (BEGIN IMMEDIATE), PostgreSQL's advisory lock on the experiment's name."""
    if not isinstance(conn, sqlite3.Connection):
        with conn.exclusive(f"shipit-decisions:{experiment}"):
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def decide_once(conn, experiment: str, epoch: int, kind: str, weights: dict[str, float], reason: str,
                numbers: dict | None = None) -> int | None:
    """Record a decision taken on statistics read at decision `epoch` (0: none yet), unless another decision was
    recorded since (by this or another replica): returns its id, or None when the statistics are stale.

    Each replica's policy reads the same data; without this check two replicas that both read epoch E before
    either wrote would both promote. The check and the insert run under `exclusive`, so exactly one wins."""
    with exclusive(conn, experiment):
        latest = latest_weights(conn, experiment)
        if (latest[0] if latest else 0) != epoch:
            return None
        return record_decision(conn, experiment, kind, weights, reason, numbers)


def latest_weights(conn, experiment: str) -> tuple[int, dict[str, float]] | None:
    """(decision id, weights) of the latest weight decision, or None when there is none."""
    row = conn.execute("SELECT id, weights FROM decisions WHERE experiment = ? ORDER BY id DESC LIMIT 1",
                       (experiment,)).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def decisions(conn, experiment: str, limit: int = 20) -> list[dict]:
    """The latest decisions, newest first."""
    rows = conn.execute("SELECT id, ts, kind, weights, reason, numbers FROM decisions WHERE experiment = ? "
                        "ORDER BY id DESC LIMIT ?", (experiment, limit)).fetchall()
    return [dict(id=r[0], ts=r[1], kind=r[2], weights=json.loads(r[3]), reason=r[4], numbers=json.loads(r[5]))
            for r in rows]
