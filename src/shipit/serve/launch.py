"""Run the router (`shipit route`), or every arm's vLLM servers and the router together (`shipit serve --config`)."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shipit.serve.config import ABConfig, load_ab_config


def run_router(cfg: ABConfig, config_path: Path | None, host: str | None = None, port: int | None = None) -> None:
    """Serve the router with uvicorn until SIGINT/SIGTERM, then drain in-flight requests for `limits.drain_s`."""
    import uvicorn

    from shipit.serve.app import create_app

    exit_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(cfg, config_path=config_path)
    server = uvicorn.Server(uvicorn.Config(app, host=host or cfg.host, port=port or cfg.port, log_level="warning",
                                           timeout_graceful_shutdown=cfg.limits.drain_s, access_log=False))
    server.run()


class Stopped(BaseException):
    """Ctrl-C (SIGINT) while `shipit serve` runs. Not KeyboardInterrupt: CPython 3.11 ends the process by
    SIGINT at exit after a KeyboardInterrupt raised inside `exec` of a string (as a dataclass or namedtuple is built
    in a lazy import), even when it was caught, so a handled Ctrl-C would now and then exit as an unhandled one."""


@contextlib.contextmanager
def ctrl_c_stops(echo=print):
    """Inside the block SIGINT raises `Stopped`, which ends the block with "stopped" (a clean exit). uvicorn, which
    takes SIGINT while it serves, hands the signal back to this handler once it has drained. After the block another
    Ctrl-C interrupts as usual."""

    def stop(*_):
        raise Stopped

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    except Stopped:
        echo("stopped")
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def exit_on_sigterm(*, hangup: bool = False) -> None:
    """Turn SIGTERM (and SIGHUP when asked) into SystemExit(0): uvicorn re-raises the signal after draining, and
    `finally` blocks must still run (to stop the vLLM servers, which live in sessions of their own)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if hangup:
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))


def launch_arms(cfg: ABConfig, log_dir: Path, python: Path | None = None) -> list:
    """Start `replicas` vLLM servers for every arm with a `model`, in parallel; add their URLs to the arm. On a CPU
    machine each server gets its own share of the cores (`split_cores`), so that no arm is slowed by another's.

    Each arm's servers require the key in the arm's `upstream_api_key_env`, or a fresh random key known only to
    this process.
    """
    from shipit.models.vllm_server import VLLMServer, split_cores

    servers, owners = [], []
    cores = iter(split_cores(sum(arm.replicas for arm in cfg.arms if arm.model is not None)))
    for arm in cfg.arms:
        if arm.model is None:
            continue
        if not (arm.upstream_api_key_env and os.environ.get(arm.upstream_api_key_env)):
            arm.upstream_api_key_env = f"SHIPIT_UPSTREAM_KEY_{arm.name.upper().replace('-', '_').replace('.', '_')}"
            os.environ[arm.upstream_api_key_env] = secrets.token_hex(24)  # hex: a leading "-" reads as an option
        key = os.environ[arm.upstream_api_key_env]
        for i in range(arm.replicas):
            servers.append(VLLMServer(arm.model, name=arm.upstream_model, api_key=key, python=python,
                                      log_path=log_dir / f"vllm-{arm.name}-{i}.log", dtype=arm.dtype,
                                      max_model_len=arm.max_model_len, cpu_cores=next(cores)))
            owners.append(arm)
    log_dir.mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(max(len(servers), 1))
    try:
        futures = [pool.submit(s.start) for s in servers]
        errors = [f.exception() for f in futures]
        if any(errors):
            raise next(e for e in errors if e)
    except BaseException:
        # A signal lands here while the threads still wait for health: cancel them (each stops its server)
        # instead of waiting up to their start-up timeout.
        for s in servers:
            s.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for s, arm in zip(servers, owners):
        arm.upstreams = [*arm.upstreams, f"http://127.0.0.1:{s.port}"]
    return servers


def serve_model(model: Path, port: int, api_key: str | None, python: Path | None, dtype: str = "auto",
                max_model_len: int | None = None, echo=print) -> None:
    """Serve one model with vLLM's OpenAI server until a signal (INT, TERM, HUP) or until vLLM exits (an error)."""
    from shipit.errors import UserError
    from shipit.models.vllm_server import VLLMServer

    exit_on_sigterm(hangup=True)  # the server runs in its own session: a signal must reach its `stop`
    with ctrl_c_stops(echo), VLLMServer(model, port=port, api_key=api_key, python=python, dtype=dtype,
                                        max_model_len=max_model_len) as server:
        echo(f"serving {server.served_name} at {server.base_url} (vLLM pid {server.proc.pid}, "
             f"log: {server.log_path}); Ctrl-C stops it")
        server.proc.wait()  # until vLLM exits; a signal's handler interrupts the wait
        raise UserError(f"serve: vLLM exited with code {server.proc.returncode}; see {server.log_path}")


def serve_ab(config_path: Path, python: Path | None = None, host: str | None = None, port: int | None = None,
             echo=print) -> None:
    """Start every arm's vLLM servers and the router; stop them all together."""
    from shipit.models.vllm_server import state_dir
    from shipit.serve.auth import load_hashes

    cfg = load_ab_config(config_path)
    load_hashes(cfg.auth, str(config_path))  # no API key is an error now, not after the vLLM servers have started
    exit_on_sigterm(hangup=True)
    # Logs beside a SQLite event store (shipit's run directory); with a PostgreSQL DSN, under the state directory.
    logs = (cfg.events.parent if isinstance(cfg.events, Path) else state_dir() / "logs" / cfg.experiment) / "vllm-logs"
    with ctrl_c_stops(echo):
        if any(arm.model is not None for arm in cfg.arms):
            echo(f"starting vLLM servers (logs: {logs})")
        servers = launch_arms(cfg, logs, python)
        try:
            for arm in cfg.arms:
                echo(f"arm {arm.name}: {', '.join(arm.upstreams)}")
            echo(f"router for '{cfg.experiment}' at http://{host or cfg.host}:{port or cfg.port}/v1; Ctrl-C stops all")
            run_router(cfg, Path(config_path), host, port)
        finally:
            for s in servers:
                s.stop()
