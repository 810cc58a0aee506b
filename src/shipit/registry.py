"""Artifact store: atomic stage outputs with manifest.json, and the lineage they record."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from shipit.errors import USER_ERRNOS, UserError, disk_full_message, free_bytes, os_error_message

MANIFEST = "manifest.json"
TRACKED_LIBRARIES = ("shipit", "torch", "transformers", "tokenizers", "trl", "peft", "mergekit", "llmcompressor",
                     "compressed-tensors", "onnxruntime", "lm-eval")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour shapes an artifact."""
    out = {}
    for name in TRACKED_LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


# (path, file names, sizes, mtimes) -> sha256: an unchanged input is hashed once per process, so a stage can hash its
# inputs in the background while it works (merge does) and the manifest reuses the result.
_HASHES: dict[tuple, str] = {}


def hash_path(path: Path) -> str:
    """Content hash of a file or directory; a finished stage output reuses the hash in its manifest."""
    path = Path(path)
    manifest = path / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("sha256")
        if recorded:
            return recorded
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST)
    stats = [(f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = (str(path.resolve()), tuple(map(str, files)), tuple(stats))
    if key in _HASHES:
        return _HASHES[key]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def read_manifest(path: Path) -> dict | None:
    """The manifest of a stage output, or None when `path` is not one."""
    m = Path(path) / MANIFEST
    return json.loads(m.read_text()) if m.is_file() else None


@dataclass
class StageRun:
    """A stage output being written: files go in `dir`; metrics land in the manifest on success."""

    stage: str
    out: Path
    dir: Path
    config: dict
    inputs: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def partial_dir(out: Path) -> Path:
    """Where an unfinished output lives; a stable name so a crashed run can resume from its checkpoints."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


# Set by the CLI's `--force`: an existing output that shipit did not write may be replaced (its files deleted).
_FORCE: ContextVar[bool] = ContextVar("shipit_force_replace", default=False)
FORCE_HINT = "pass --force to replace it"
MIN_FREE_BYTES = 1 << 20  # below this after a failure, the failure is reported as a full disk


@contextmanager
def replacing(force: bool = True) -> Iterator[None]:
    """Within this block, stage outputs may replace existing directories that shipit did not write (`--force`)."""
    token = _FORCE.set(force)
    try:
        yield
    finally:
        _FORCE.reset(token)


def _within(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def foreign_files(out: Path) -> list[str]:
    """Files in an existing output that shipit did not write: all of them without a manifest, else those the
    manifest does not list (a user's notes added to a model directory)."""
    manifest = read_manifest(out)
    present = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir())
    if manifest is None:
        return present
    listed = manifest.get("files")
    if listed is None:  # written before manifests listed their files: trust the manifest
        return []
    return [f for f in present if f != MANIFEST and f not in set(listed)]


def check_output(out: str | Path, inputs: dict[str, str | Path] | None = None, need_bytes: int = 0) -> Path:
    """Refuse an output that would destroy data, before any work: one that is, holds or lies inside an input;
    an existing path shipit did not write (unless `--force`); a directory that cannot be written, or whose file
    system has less than `need_bytes` free."""
    out = Path(out).resolve()
    for name, p in (inputs or {}).items():
        p = Path(p).resolve()
        if p == out:
            raise UserError(f"output {out} is the input '{name}'; writing it would overwrite its source. "
                            "Choose another output directory")
        if _within(out, p):
            raise UserError(f"output {out} is inside the input '{name}' ({p}); write it outside its inputs")
        if _within(p, out):
            raise UserError(f"output {out} contains the input '{name}' ({p}); replacing it would delete that "
                            "input. Choose another output directory")
    if out.is_file() or out.is_symlink():
        if not _FORCE.get():
            raise UserError(f"output {out} exists and is a file, not an output directory; choose another output "
                            f"or {FORCE_HINT}")
    elif out.is_dir():
        foreign = foreign_files(out)
        if foreign and not _FORCE.get():
            why = ("was not written by shipit (no manifest.json)" if read_manifest(out) is None
                   else f"holds files shipit did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})")
            raise UserError(f"output {out} already exists and {why}; choose another output, or {FORCE_HINT} "
                            "(its files are deleted)")
    _check_writable(out)
    free = free_bytes(out.parent)
    if need_bytes and free is not None and free < need_bytes:
        raise UserError(f"output {out}: not enough disk space: it needs about {need_bytes / 1e6:.1f} MB and "
                        f"{free / 1e6:.1f} MB are free there; free some space or write the output elsewhere")
    return out


def _check_writable(out: Path) -> None:
    """Create the partial dir's parent and probe it; a replaced output must be deletable too."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.write-test-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        raise UserError(f"output {out}: cannot write its directory {out.parent}: "
                        + os_error_message(exc, out.parent).split(": ", 1)[0]) from None
    if out.is_dir() and not os.access(out, os.W_OK):
        raise UserError(f"output {out}: the directory is read-only, so shipit cannot replace it; "
                        "make it writable or choose another output")


def _as_user_error(exc: BaseException, out: Path, tmp: Path) -> BaseException:
    """A full disk or a read-only/permission failure while writing the output, as one line."""
    free = free_bytes(tmp)
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        return UserError(f"output {out}: " + os_error_message(exc, tmp))
    if isinstance(exc, Exception) and not isinstance(exc, UserError) and free is not None and free < MIN_FREE_BYTES:
        # Libraries wrap ENOSPC in their own errors (torch: "file write failed"); the free space tells.
        return UserError(f"output {out}: " + disk_full_message(tmp) + f" (the writer said: {str(exc)[:200]})")
    return exc


def world_size() -> int:
    """How many processes train together (`accelerate launch` / torchrun set WORLD_SIZE); 1 for a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    """This process's rank among them (0 writes the outputs)."""
    return int(os.environ.get("RANK", "0"))


def barrier() -> None:
    """Wait for every rank of a multi-process launch (nothing to wait for in a plain run)."""
    if world_size() < 2:
        return
    from accelerate import PartialState

    from shipit.device import has_cuda

    # The process group the trainer will use (gloo on CPU, nccl on GPU): `cpu` as `trl_kwargs` sets `use_cpu`.
    PartialState(cpu=not has_cuda()).wait_for_everyone()


def leave_process_group() -> None:
    """End a multi-process launch's process group (gloo/nccl) before the process exits, as PyTorch asks.

    Left to the interpreter's exit, gloo's worker threads may still hold a tensor while Python is torn down, and the
    rank aborts (SIGABRT, "terminate called without an active exception"; pytorch/pytorch#190489) after it trained and
    wrote: the launch fails though its output is complete. Only on success: after an error another rank may still be
    inside a collective, and tearing down would wait for it.
    """
    if world_size() < 2:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def stage_output(out: str | Path, stage: str, config: Any, inputs: dict[str, str | Path] | None = None,
                 *, resume: bool = False, keep_on_error: bool = False, need_bytes: int = 0) -> Iterator[StageRun]:
    """Write a stage's output atomically: into a hidden partial dir, then manifest, then rename onto `out`.

    Before any work, `check_output` refuses outputs that would lose data. A crash never leaves anything that
    looks complete: only `.NAME.partial`, without a manifest; an earlier output stays in place until the new one
    is complete. Stages that checkpoint (`keep_on_error=True`) keep the partial dir after an exception so that
    `resume=True` continues from it; a killed process leaves it too.
    """
    out = Path(out).resolve()
    tmp = partial_dir(out)
    check_output(out, inputs, need_bytes)  # on every rank, so a refused output stops them all
    if process_rank() != 0:
        # Under `accelerate launch`, other ranks train and checkpoint (their RNG states) into rank 0's partial dir;
        # only rank 0 clears it, writes the manifest and renames it. The barriers keep rank 0 from clearing the
        # dir after another rank wrote to it, and from renaming it while another rank still writes.
        barrier()
        yield StageRun(stage, out, tmp, {}, {})
        barrier()
        return
    try:
        if tmp.exists() and not resume:
            shutil.rmtree(tmp)  # only ever a partial dir: shipit's own name, never a user's
        tmp.mkdir(exist_ok=True)
        (tmp / MANIFEST).unlink(missing_ok=True)  # a partial never holds a manifest
    except OSError as exc:
        raise _as_user_error(exc, out, tmp) from exc
    barrier()
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config or {})
    run = StageRun(stage, out, tmp, cfg, {k: Path(v) for k, v in (inputs or {}).items()})
    started = time.time()
    try:
        yield run
        barrier()
        manifest = {
            "stage": stage,
            "name": out.name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": cfg,
            "inputs": {k: {"path": str(p.resolve()), "sha256": hash_path(p)} for k, p in run.inputs.items()},
            "parents": parent_runs(run.inputs.values()),
            "versions": library_versions(),
            "metrics": run.metrics,
            "wall_time_s": round(time.time() - started, 2),
            **run.extra,
        }
        manifest["sha256"] = hash_path(tmp)
        manifest["files"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if not p.is_dir())
        staged = tmp / f".{MANIFEST}.tmp"
        staged.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
        staged.rename(tmp / MANIFEST)
        _swap_in(tmp, out)
    except BaseException as exc:
        (tmp / MANIFEST).unlink(missing_ok=True)
        (tmp / f".{MANIFEST}.tmp").unlink(missing_ok=True)
        if not keep_on_error:
            shutil.rmtree(tmp, ignore_errors=True)
        err = _as_user_error(exc, out, tmp)
        if err is exc:
            raise
        raise err from exc


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished partial dir onto `out`; an earlier output is moved aside first and deleted only after."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
        if old.exists():
            print(f"warning: could not delete the replaced output, left at {old}", file=sys.stderr)


def parent_runs(inputs) -> list[str]:
    """The stage outputs among `inputs`: a directory with a manifest, or a file inside one (data stages' JSONL)."""
    runs = set()
    for p in map(Path, inputs):
        for candidate in (p, p.parent):
            if candidate.is_dir() and read_manifest(candidate):
                runs.add(str(candidate.resolve()))
                break
    return sorted(runs)


def find_runs(root: str | Path) -> list[tuple[Path, dict]]:
    """Every finished stage output under `root`, oldest first."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"runs: directory not found: {root}")
    found = []
    for m in root.rglob(MANIFEST):
        if any(part.startswith(".") and part.endswith(".partial") for part in m.parts):
            continue
        found.append((m.stat().st_mtime, m.parent, json.loads(m.read_text())))
    return [(path, manifest) for _, path, manifest in sorted(found, key=lambda r: (r[2].get("created", ""), r[0]))]


def headline(manifest: dict) -> str:
    """A short `key=value` summary of a manifest's metrics (numbers only, at most four)."""
    items = [(k, v) for k, v in manifest.get("metrics", {}).items() if isinstance(v, (int, float))][:4]
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def lineage_lines(path: str | Path, _prefix: str = "", _last: bool = True, _root: bool = True,
                  _seen: tuple[str, ...] = ()) -> list[str]:
    """The tree of parents of a stage output, back to its roots, as printable lines."""
    path = Path(path)
    branch = "" if _root else f"{_prefix}{'└── ' if _last else '├── '}"
    if _root and not path.exists():
        raise UserError(f"lineage: path not found: {path}")
    manifest = read_manifest(path)
    if manifest is None:
        if _root:
            raise UserError(f"lineage: {path} has no {MANIFEST}; it was not produced by shipit")
        return [f"{branch}{path}  (external input)"]
    key = str(path.resolve())
    if key in _seen:
        # A manifest that names its own descendant (an output written over its input by an old shipit)
        return [f"{branch}{path}  (cycle: already shown above; its manifest names itself as an ancestor)"]
    label = f"{manifest['name']}  [{manifest['stage']}]  {headline(manifest)}".rstrip()
    lines = [branch + label]
    child_prefix = "" if _root else _prefix + ("    " if _last else "│   ")
    parents = manifest.get("parents", [])
    for i, parent in enumerate(parents):
        lines += lineage_lines(parent, child_prefix, i == len(parents) - 1, False, (*_seen, key))
    return lines
