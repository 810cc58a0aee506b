"""`shipit serve` faults with the real vLLM CPU server: a signal to shipit (SIGKILL too) stops its server (which runs
in a session of its own), nothing is written beside the model, and a model vLLM cannot load is reported by its real
cause."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

import shipit

from shipit.models.vllm_server import free_port

pytestmark = pytest.mark.vllm
SRC = Path(shipit.__file__).resolve().parents[1]  # the shipit under test


def _shipit(args, tmp: Path, vllm_python: Path, wrap: list[str] | None = None, env: dict | None = None):
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(SRC), "SHIPIT_STATE": str(tmp / "state"),
           "SHIPIT_VLLM_PYTHON": str(vllm_python), "TMPDIR": str(_short_tmp(tmp))}
    # A shell starts background jobs with SIGINT ignored, and a child inherits that: give shipit the default
    # disposition a user's terminal gives it, whatever launched the tests.
    proc = subprocess.Popen([*(wrap or []), sys.executable, "-m", "shipit", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    proc.reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    proc.reader.start()
    return proc, lines


def _output(proc, lines: list[str]) -> str:
    """Everything shipit wrote, to its end: once it has exited, the reader is given the time to take the rest (a
    traceback printed last would otherwise be missing from the assertion that needs it)."""
    proc.reader.join(10)
    return "".join(lines)


def _short_tmp(tmp: Path) -> Path:
    """A temporary directory for shipit under test, linked from tmp/"tmp": short, as vLLM's socket paths must be."""
    link = tmp / "tmp"
    if not link.is_symlink():
        link.symlink_to(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    return link.resolve()


def _wait_for(pred, lines, proc, timeout_s=300):
    deadline = time.time() + timeout_s
    while not pred():
        assert time.time() < deadline, "".join(lines)[-3000:]
        assert proc.poll() is None, "".join(lines)[-3000:]
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _processes_naming(text: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text in (p / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def _read_only(path: Path) -> list[str]:
    """A wrapper that runs the command with `path` read-only, in a private mount namespace."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs `unshare -rm` to make a read-only model directory")
    return ["unshare", "-rm", "sh", "-c", f'mount --bind {path} {path} && mount -o remount,bind,ro {path} && '
            'exec "$@"', "sh"]


def _guard_pid(model: Path) -> int | None:
    """The server's guard, which leads the process group of vLLM's API server and engine (shipit.models.guard)."""
    return next((p for p in _processes_naming(f"--model\0{model}\0") if os.getpgid(p) == p), None)


# SIGTERM and SIGKILL while serving, SIGINT and SIGHUP while vLLM is still starting (the other way out of `serve`).
# SIGKILL gives shipit no chance to stop anything: the guard stops the server when shipit is gone.
@pytest.mark.parametrize("sig,when", [(signal.SIGTERM, "serving"), (signal.SIGKILL, "serving"),
                                      (signal.SIGINT, "starting"), (signal.SIGHUP, "starting")],
                         ids=lambda v: v.name if isinstance(v, signal.Signals) else v)
def test_serve_model_stops_its_server_on_signal(sig, when, tiny_base, vllm_python, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_base, model)
    before = sorted(p.name for p in model.iterdir())
    # SIGTERM's run serves from a read-only model directory: the log must go to the state directory.
    wrap = _read_only(model) if sig == signal.SIGTERM else None
    proc, lines = _shipit(["serve", str(model), "--port", str(free_port())], tmp_path, vllm_python, wrap)
    try:
        if when == "serving":
            _wait_for(lambda: any(ln.startswith("serving ") for ln in lines), lines, proc)
        else:
            _wait_for(lambda: _guard_pid(model), lines, proc, 120)
        pid = _guard_pid(model)
        assert _group_alive(pid)
        proc.send_signal(sig)
        code = proc.wait(60)
        deadline = time.time() + 30
        while _group_alive(pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _group_alive(pid), f"the vLLM server (pid {pid}) outlived shipit after {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _processes_naming(str(model)):
            os.kill(p, signal.SIGKILL)
    out = _output(proc, lines)
    # A handled signal is a clean exit (shipit stopped its server itself); SIGKILL is not handled.
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), (code, out[-2000:])
    if when == "serving":
        line = next(ln for ln in lines if ln.startswith("serving "))
        assert f"vLLM pid {pid}" in line and f"log: {tmp_path / 'state' / 'logs'}" in line, line
    assert list((tmp_path / "state" / "logs").glob("vllm-*.log"))
    assert sorted(p.name for p in model.iterdir()) == before, "something was written beside the model"
    # vLLM's processes talk over ZeroMQ sockets in the temporary directory and leave them there when stopped.
    left = [str(p) for p in (tmp_path / "tmp").resolve().rglob("*") if p.is_socket()]
    shutil.rmtree((tmp_path / "tmp").resolve())
    assert not left, f"the server left its sockets behind after {sig.name}: {left}"
    assert "Traceback" not in out


def test_serve_config_stops_promptly_on_sigterm_during_startup(tiny_base, vllm_python, tmp_path):
    model = tmp_path / "model-startup"
    shutil.copytree(tiny_base, model)
    cfg = _ab_config(tmp_path, [{"name": "a", "weight": 50, "model": str(model)},
                                {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:9"]}],
                     auth={"required": False})
    proc, lines = _shipit(["serve", "--config", str(cfg)], tmp_path, vllm_python)
    try:
        _wait_for(lambda: _processes_naming(f"--model\0{model}\0"), lines, proc, 120)
        time.sleep(2)  # the server is starting (it takes tens of seconds on CPU), not yet healthy
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        took = time.time() - t0
        deadline = time.time() + 15
        while _processes_naming(str(model)) and time.time() < deadline:
            time.sleep(0.2)
        assert not _processes_naming(str(model)), "a vLLM server outlived `shipit serve --config`"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _processes_naming(str(model)):
            os.kill(pid, signal.SIGKILL)
    assert took < 12, f"SIGTERM during start-up took {took:.1f}s"


def _ab_config(tmp_path: Path, arms: list[dict], **extra) -> Path:
    cfg = tmp_path / "ab.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "faults", "port": free_port(), "events": "events.sqlite", "arms": arms,
                                   **extra}))
    return cfg


def test_serve_config_without_api_keys_fails_before_starting_any_server(tiny_base, tmp_path):
    """The router needs API keys; without them `serve --config` said so only after its vLLM servers had started
    (tens of seconds and GiBs on a CPU), and after it had printed that the router was up."""
    cfg = _ab_config(tmp_path, [{"name": "a", "weight": 50, "model": str(tiny_base)},
                                {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:9"]}])
    env = {k: v for k, v in os.environ.items() if k != "SHIPIT_API_KEYS"}
    proc, lines = _shipit(["serve", "--config", str(cfg)], tmp_path, tmp_path / "no-vllm-python", env=env)
    code = proc.wait(60)
    out = _output(proc, lines)
    assert code == 2 and "Traceback" not in out, out
    assert out.strip().splitlines()[-1].startswith(f"error: {cfg}: field 'auth': no API keys"), out
    assert "starting vLLM" not in out and "router for" not in out, out


@pytest.mark.parametrize("command", [["serve", "--config"], ["route", "--config"]], ids=["serve", "route"])
def test_ctrl_c_stops_the_router_exits_0(tmp_path, command):
    """Ctrl-C is how a user stops `shipit serve --config` and `shipit route`, as with `shipit serve MODEL`: it
    drains, stops what it started, says "stopped" and exits 0 (both exited 130, "aborted", through uvicorn's
    re-raised SIGINT)."""
    cfg = _ab_config(tmp_path, [{"name": "a", "weight": 50, "upstreams": ["http://127.0.0.1:9"]},
                                {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:9"]}],
                     auth={"required": False})
    proc, lines = _shipit([*command, str(cfg)], tmp_path, tmp_path / "no-vllm-python")
    try:
        _wait_for(lambda: any(ln.startswith("router for ") for ln in lines), lines, proc)
        port = yaml.safe_load(cfg.read_text())["port"]
        _wait_for(lambda: _accepts(port), lines, proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = _output(proc, lines)
    assert code == 0 and "Traceback" not in out, (code, out)
    assert out.strip().splitlines()[-1] == "stopped", out
    assert "starting vLLM" not in out  # no arm has a model: nothing to start


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_unloadable_model_names_the_cause(tiny_base, vllm_python, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_base, model)
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, "intermediate_size": cfg["intermediate_size"] * 2}))
    proc, lines = _shipit(["serve", str(model), "--port", str(free_port())], tmp_path, vllm_python)
    code = proc.wait(300)
    out = _output(proc, lines)
    last = out.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in out
    assert last.startswith("error: vLLM exited") and "exceeds dimension size" in last, last
    assert "root cause" not in last and str(tmp_path / "state" / "logs") in last
