"""The experiment record: every assignment with its outcome, feedback and decision, appended to SQLite (WAL)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

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
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create) the event store in WAL mode; each write is its own committed transaction."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
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
        self.conn = connect(path)
        self._stop = threading.Event()
        if checkpoint_s:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            threading.Thread(target=self._checkpoints, args=(checkpoint_s,), daemon=True).start()

    def _checkpoints(self, every: float) -> None:
        conn = connect(self.path)
        while not self._stop.wait(every):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.close()

    def record(self, row: dict) -> None:
        """Append one request's assignment and outcome."""
        self.conn.execute(INSERT, tuple(row.get(c) for c in COLUMNS))

    def payload(self, request_id: str, prompt, answer: str | None) -> None:
        """Store what a request asked (chat messages or a completion prompt, as JSON) and the answer text."""
        self.conn.execute("INSERT OR REPLACE INTO payloads VALUES (?, ?, ?, ?)",
                          (request_id, time.time(), json.dumps(prompt), answer))

    def has_request(self, request_id: str) -> bool:
        """Whether a request with this id was recorded."""
        return self.conn.execute("SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone() is not None

    def feedback(self, request_id: str, score: float) -> None:
        """Append a feedback score in [0, 1] for a request."""
        self.conn.execute("INSERT INTO feedback VALUES (?, ?, ?)", (request_id, time.time(), score))

    def close(self) -> None:
        self._stop.set()
        self.conn.close()


def record_decision(conn: sqlite3.Connection, experiment: str, kind: str, weights: dict[str, float],
                    reason: str, numbers: dict | None = None) -> int:
    """Log a decision (weights change, promote, rollback, reload) with the numbers behind it; returns its id."""
    cur = conn.execute("INSERT INTO decisions (ts, experiment, kind, weights, reason, numbers) VALUES (?,?,?,?,?,?)",
                       (time.time(), experiment, kind, json.dumps(weights), reason,
                        json.dumps(numbers or {}, default=float)))
    return int(cur.lastrowid)


def latest_weights(conn: sqlite3.Connection, experiment: str) -> tuple[int, dict[str, float]] | None:
    """(decision id, weights) of the latest weight decision, or None when there is none."""
    row = conn.execute("SELECT id, weights FROM decisions WHERE experiment = ? ORDER BY id DESC LIMIT 1",
                       (experiment,)).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def decisions(conn: sqlite3.Connection, experiment: str, limit: int = 20) -> list[dict]:
    """The latest decisions, newest first."""
    rows = conn.execute("SELECT id, ts, kind, weights, reason, numbers FROM decisions WHERE experiment = ? "
                        "ORDER BY id DESC LIMIT ?", (experiment, limit)).fetchall()
    return [dict(id=r[0], ts=r[1], kind=r[2], weights=json.loads(r[3]), reason=r[4], numbers=json.loads(r[5]))
            for r in rows]
