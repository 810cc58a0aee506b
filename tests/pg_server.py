"""A throwaway PostgreSQL server for the tests and benchmarks: the server binaries of the `pgserver` wheel (a pin of
the `test` extra, so `make test` brings them), a temporary data directory and a free port on 127.0.0.1.

PostgreSQL refuses to run as root: when the tests run as root (CI does), the server runs as `nobody` (runuser).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from shipit.models.vllm_server import free_port


def bin_dir(as_user: list[str] = ()) -> Path:
    """The wheel's bin/ (found without importing pgserver, whose import sets up lock files we do not use).

    When `as_user` cannot reach it (a checkout under /root, mode 0700), a copy of the server (34 MB) in the temp
    directory, made once per machine, instead of loosening the permissions of the user's folders."""
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None, "pgserver is not installed: `make env` installs the test extra (pip install -e '.[test]')"
    install = Path(spec.submodule_search_locations[0]) / "pginstall"
    if not as_user or subprocess.run([*as_user, "test", "-x", str(install / "bin" / "postgres")]).returncode == 0:
        return install / "bin"
    # The binaries find their libraries through RPATH $ORIGIN/../../../pgserver.libs: copy both, in that layout.
    copy = Path(tempfile.gettempdir()) / f"shipit-pginstall-{os.stat(install / 'bin' / 'postgres').st_mtime_ns}"
    if not (copy / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="shipit-pginstall-"))
        shutil.copytree(install, staging / "pgserver" / "pginstall", ignore=shutil.ignore_patterns("include"))
        shutil.copytree(install.parent.parent / "pgserver.libs", staging / "pgserver.libs")
        os.chmod(staging, 0o755)
        os.chmod(staging / "pgserver", 0o755)
        shutil.rmtree(copy, ignore_errors=True)  # a partial copy of an earlier, interrupted run
        os.replace(staging, copy)
    return copy / "pgserver" / "pginstall" / "bin"


class LocalPostgres:
    """initdb once, then start/stop (a stop and a start keep the data and the port: the server 'went away')."""

    def __init__(self, fsync: bool = True):
        self.root = Path(tempfile.mkdtemp(prefix="shipit-pg-"))
        self.data, self.port, self.fsync = self.root / "data", free_port(), fsync
        self.proc: subprocess.Popen | None = None
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            os.chown(self.root, 65534, 65534)
        self.bin = bin_dir(self.as_user)
        self.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "utf8",
                  "--no-sync"])

    def run(self, cmd: list[str]) -> None:
        subprocess.run(self.as_user + cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self, timeout_s: float = 30) -> "LocalPostgres":
        log = open(self.root / "server.log", "ab")
        opts = ["-c", "max_connections=200", "-c", "shared_buffers=32MB"] + ([] if self.fsync else ["-c", "fsync=off"])
        self.proc = subprocess.Popen(self.as_user + [str(self.bin / "postgres"), "-D", str(self.data), "-p",
                                                     str(self.port), "-h", "127.0.0.1", "-k", str(self.root)] + opts,
                                     stdout=log, stderr=log)
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                assert self.proc.poll() is None, (self.root / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"PostgreSQL did not start in {timeout_s}s"
                time.sleep(0.1)

    def create_db(self, name: str) -> str:
        """A fresh database on this server; returns its DSN."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected, committed data kept)."""
        pid_file = self.data / "postmaster.pid"
        if self.proc is None:
            return
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        self.proc.wait(30)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
