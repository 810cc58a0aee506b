"""Artifact store: atomic stage outputs with manifest.json, and the lineage they record."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from shipit.errors import UserError

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


@contextmanager
def stage_output(out: str | Path, stage: str, config: Any, inputs: dict[str, str | Path] | None = None,
                 *, resume: bool = False, keep_on_error: bool = False) -> Iterator[StageRun]:
    """Write a stage's output atomically: into a hidden partial dir, then manifest, then rename onto `out`.

    A crash never leaves anything that looks complete: only `.NAME.partial`, without a manifest. Stages that
    checkpoint (`keep_on_error=True`) keep it after an exception so that `resume=True` continues from it;
    a killed process leaves it too.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_dir(out)
    if int(os.environ.get("RANK", "0")) != 0:
        # Under `accelerate launch`, non-main ranks train and checkpoint into the same partial dir; only rank 0
        # clears it, writes the manifest and renames it.
        tmp.mkdir(exist_ok=True)
        yield StageRun(stage, out, tmp, {}, {})
        return
    if tmp.exists() and not resume:
        shutil.rmtree(tmp)
    tmp.mkdir(exist_ok=True)
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config or {})
    run = StageRun(stage, out, tmp, cfg, {k: Path(v) for k, v in (inputs or {}).items()})
    started = time.time()
    try:
        yield run
    except BaseException:
        if not keep_on_error:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def lineage_lines(path: str | Path, _prefix: str = "", _last: bool = True, _root: bool = True) -> list[str]:
    """The tree of parents of a stage output, back to its roots, as printable lines."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        if _root:
            raise UserError(f"lineage: {path} has no {MANIFEST}; it was not produced by shipit")
        return [f"{_prefix}{'└── ' if _last else '├── '}{path}  (external input)"]
    label = f"{manifest['name']}  [{manifest['stage']}]  {headline(manifest)}".rstrip()
    lines = [label if _root else f"{_prefix}{'└── ' if _last else '├── '}{label}"]
    child_prefix = "" if _root else _prefix + ("    " if _last else "│   ")
    parents = manifest.get("parents", [])
    for i, parent in enumerate(parents):
        lines += lineage_lines(parent, child_prefix, i == len(parents) - 1, False)
    return lines
