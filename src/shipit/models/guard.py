"""Child processes that do not outlive shipit: a guard process runs the command and stops it when shipit is gone.

A vLLM server runs in a session of its own (so a Ctrl-C in the terminal reaches shipit, which stops the server
in order), and shipit stops it on exit, SIGTERM and SIGINT. A SIGKILL (the kernel's OOM killer, `kill -9`) gives
shipit no chance to, and the server, ~3 GiB, would live on with nobody to stop it. The kernel's parent-death signal
(PR_SET_PDEATHSIG) is no substitute: it fires when the *thread* that started the child exits, and shipit starts
servers from worker threads. So a small guard process, started by shipit, starts the command, polls its own parent,
and, once shipit is gone (the guard was re-parented), terminates its process group: the command and every process
it started (vLLM's engine core).
"""

from __future__ import annotations

import os
import subprocess
import sys

# Runs under any Python 3 (the guard imports nothing from shipit). argv: PARENT_PID POLL_S GRACE_S SCRATCH COMMAND...
GUARD = r"""
import os, shutil, signal, subprocess, sys, time
parent, poll_s, grace_s, scratch = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
cmd = sys.argv[5:]
child, stopping = None, []
def stop(*_):  # one SIGTERM to every process of the group (the guard leads it; its own copy lands here, ignored)
    if not stopping:
        stopping.append(child is not None)
        os.killpg(os.getpgrp(), signal.SIGTERM)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
child = subprocess.Popen(cmd)
if stopping and not stopping[0]:  # stopped while the command was starting
    child.terminate()
while child.poll() is None and not stopping:
    if os.getppid() != parent:  # re-parented: whoever started the guard is gone
        stop()
        break
    time.sleep(poll_s)
try:
    child.wait(grace_s)
except subprocess.TimeoutExpired:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # the guard too: the caller removes the scratch directory then
if scratch:
    shutil.rmtree(scratch, ignore_errors=True)
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
"""


def guarded_popen(cmd: list[str], *, poll_s: float = 1.0, grace_s: float = 20.0, scratch: str | os.PathLike = "",
                  **popen_kwargs) -> subprocess.Popen:
    """Start `cmd` under a guard in a new session; the returned process is the guard, which exits with the command's
    code (128 + N when signal N ended it). SIGTERM or SIGINT to the guard sends one SIGTERM to the command and every
    process it started (its process group) and waits up to `grace_s` for the command before SIGKILLing the group;
    so does the guard when this process dies (checked every `poll_s`). `scratch`, a directory made for the command
    alone, is removed once the command has exited."""
    guard = [sys.executable, "-c", GUARD, str(os.getpid()), str(poll_s), str(grace_s), str(scratch or ""), *cmd]
    return subprocess.Popen(guard, start_new_session=True, **popen_kwargs)


def die_with_launcher() -> None:
    """End this process with its parent: for a rank of `accelerate launch` / torchrun. The launcher starts each rank
    in a session of its own, so a launcher killed with SIGKILL (alone or with its process group) would leave the
    ranks training on as orphans, still writing checkpoints into the partial output that the next `--resume` reads.
    The parent-death signal's caveat above does not bite here: torchrun starts its ranks from its main thread, which
    lives as long as the launcher. Linux only (elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) != 0:  # 1: PR_SET_PDEATHSIG
        return
    if os.getppid() != parent:  # the launcher died before the signal was set
        os.kill(os.getpid(), signal.SIGKILL)
