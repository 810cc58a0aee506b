"""Strict config models and loaders whose errors name the file, the line, the field and the fix."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shipit.errors import UserError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every shipit config: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def require_path(path: str | Path, what: str, *, kind: str = "any", hint: str = "") -> Path:
    """Return `path` if it exists (as a file or dir when `kind` says so), else raise a one-line UserError."""
    p = Path(path).expanduser()
    ok = p.is_file() if kind == "file" else p.is_dir() if kind == "dir" else p.exists()
    if not ok:
        noun = {"file": "file", "dir": "directory"}.get(kind, "path")
        raise UserError(f"{what}: {noun} not found: {p}" + (f" ({hint})" if hint else ""))
    return p


def yaml_line(text: str, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at `loc`, or of its closest existing parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            line = match[0][0].start_mark.line + 1
            node = match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Allowed keys of the sub-model at `loc` (for 'did you mean' on unknown keys)."""
    cls: Any = model
    for key in loc:
        if isinstance(key, int) or cls is None:
            continue
        field = getattr(cls, "model_fields", {}).get(key)
        if field is None:
            return []
        ann = field.annotation
        sub = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sub:
            for a in getattr(ann, "__args__", ()):
                sub += [b for b in getattr(a, "__args__", ()) if isinstance(b, type) and issubclass(b, BaseModel)]
        cls = sub[0] if sub else None
    return sorted(getattr(cls, "model_fields", {})) if cls else []


def _given(tree: dict, loc: tuple) -> bool:
    """Whether the `--set` overrides name `loc` (or a parent of it)."""
    node: Any = tree
    for key in loc:
        if not isinstance(node, dict) or str(key) not in node:
            return False
        node = node[str(key)]
    return True


def format_validation_error(source: str, err: ValidationError, model: type[BaseModel], text: str = "",
                            overrides: dict | None = None) -> str:
    """One line: `file:line: field 'a.b': what is wrong; the fix` (+ how many more problems)."""
    errors = err.errors()
    # A misspelled key shows up twice: as an unknown key and as a missing field; the typo is the one to name.
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(e["loc"])
    field = ".".join(str(x) for x in loc) or "(top level)"
    if overrides and _given(overrides, loc):
        source, text = "--set", ""  # the value came from the command line, not from a line of the file
    line = yaml_line(text, loc) if text else None
    where = f"{source}:{line}" if line else source
    if e["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        msg = f"unknown key '{loc[-1]}'" + (f"; did you mean '{close[0]}'?" if close else "")
        msg += f" allowed keys: {', '.join(allowed)}" if allowed else ""
    elif e["type"] == "missing":
        msg = "required field is missing"
    else:
        msg = e["msg"].removeprefix("Value error, ")
        if "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {shorten(repr(e['input']))})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: field '{field}': {msg}{more}"


_SEXAGESIMAL = re.compile(r"[-+]?\d+(:\d+)+(\.\d*)?")


def parse_overrides(pairs: Iterable[str]) -> dict:
    """Turn `a.b=1` strings into a nested dict; values are parsed as YAML scalars."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected key=value, e.g. --set trainer.max_steps=10")
        key, value = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        # YAML 1.1 reads `1:5` as the base-60 integer 65; a ratio on the command line stays a string
        if _SEXAGESIMAL.fullmatch(value.strip()):
            node[parts[-1]] = value.strip()
            continue
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--set {key.strip()}={shorten(value)}: the value is not valid YAML "
                            f"({getattr(exc, 'problem', None) or exc}); quote it, e.g. --set '{key.strip()}=\"...\"'"
                            ) from None
    return out


def shorten(value: Any, limit: int = 80) -> str:
    """`value` as text, cut to `limit` characters (a 5,000-character value is not echoed whole)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def deep_merge(base: dict, extra: dict) -> dict:
    """Recursively merge `extra` into a copy of `base`."""
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_yaml(path: str | Path, what: str = "config") -> tuple[Any, str]:
    """Parse a YAML file; a syntax error becomes `file:line: invalid YAML: ...`."""
    p = require_path(path, what, kind="file")
    text = p.read_text()
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{p}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def load_config(path: str | Path, model: type[M], overrides: Iterable[str] = (), what: str = "config") -> M:
    """Load and validate a YAML config into `model`, applying `--set key=value` overrides."""
    data, text = load_yaml(path, what)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    extra = parse_overrides(overrides)
    if extra:
        data = deep_merge(data, extra)
    return validate(data, model, str(path), text, extra)


def validate(data: Any, model: type[M], source: str, text: str = "", overrides: dict | None = None) -> M:
    """Validate `data` into `model`; errors become one UserError line naming `source` (or `--set`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(source, exc, model, text, overrides)) from None


def read_jsonl(path: str | Path, required: Iterable[str] = (), what: str = "data",
               allow_empty: bool = False) -> list[dict]:
    """Read JSONL rows; a malformed row or a missing field is reported as `file:line: ...`; a file without rows is
    an error unless `allow_empty`."""
    p = require_path(path, what, kind="file")
    need = tuple(required)
    rows = []
    with p.open(encoding="utf-8-sig") as f:  # an editor's BOM is not a JSON error
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                # without the newline, an unterminated string is reported where it starts, not at the line's end
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise UserError(f"{p}:{i}: malformed JSON row ({exc.msg.removesuffix(' at')} at column "
                                f"{exc.colno})") from None
            if not isinstance(row, dict):
                raise UserError(f"{p}:{i}: expected a JSON object per line, got {type(row).__name__}")
            missing = [k for k in need if k not in row]
            if missing:
                raise UserError(
                    f"{p}:{i}: missing field '{missing[0]}' (each row needs: {', '.join(need)}; has: {', '.join(row)})"
                )
            rows.append(row)
    if not rows and not allow_empty:
        raise UserError(f"{p}: no rows (an empty dataset cannot be used)")
    return rows
