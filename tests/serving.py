"""`shipit serve --config` run as a user runs it, for tests: every arm on vLLM plus the router, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

SRC = Path(__file__).resolve().parent.parent / "src"


@contextlib.contextmanager
def serving(config: dict, tmp: Path, vllm_python: Path, env: dict | None = None, timeout_s: float = 300):
    """Write `config` as ab.yaml in `tmp`, run `shipit serve --config` on it, and yield (config, router URL,
    {arm: upstream URL}); on exit, SIGTERM it and check that it exits 0 and every vLLM server stopped with it."""
    from shipit.serve.config import load_ab_config

    cfg_path = tmp / "ab.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "shipit", "serve", "--config", str(cfg_path), "--vllm-python",
                             str(vllm_python)], env={**os.environ, "PYTHONPATH": str(SRC), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    url = f"http://127.0.0.1:{config['port']}"
    deadline = time.time() + timeout_s
    try:
        while not any(ln.startswith("router for") for ln in lines):
            assert proc.poll() is None and time.time() < deadline, "".join(lines)[-2000:]
            time.sleep(0.5)
        while True:  # the router line is printed just before uvicorn binds
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:  # not listening yet, or a connection reset while uvicorn starts (CI, 3433c17)
                assert proc.poll() is None and time.time() < deadline, "".join(lines)[-2000:]
                time.sleep(0.2)
        upstreams = {ln.split(":", 1)[0][4:]: ln.split(": ", 1)[1].strip() for ln in lines if ln.startswith("arm ")}
        yield load_ab_config(cfg_path), url, upstreams
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        assert code == 0, "".join(lines)[-2000:]
    for u in upstreams.values():  # the vLLM servers stopped with the router
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{u}/health")
