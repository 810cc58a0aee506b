"""Checks on a mergekit config that mergekit itself makes late, deep in a traceback, or not at all.

Everything here reads only YAML, config.json and tokenizer.json: no tensor is touched. Which methods need a base
model and how many inputs they take comes from mergekit's own method spec (`InputContract`), not from lists here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shipit.config import yaml_line
from shipit.errors import UserError

# config.json keys that must agree for tensors to line up one to one.
ARCH_KEYS = ("architectures", "model_type", "hidden_size", "intermediate_size", "num_attention_heads",
             "num_key_value_heads")


@dataclass
class Group:
    """One set of models merged together: `models:` at the top level, or one slice's `sources`."""

    loc: tuple  # where the group is in the YAML, e.g. ("models",) or ("slices", 0, "sources")
    paths: list[str]
    params: list[dict]
    base: str | None
    base_loc: tuple = ("base_model",)
    shared: dict = field(default_factory=dict)  # parameters set for the whole group
    layer_ranges: list | None = None


class Where:
    """Formats `file:line: field 'a.b[0]':` prefixes for one config file."""

    def __init__(self, path: str | Path, text: str):
        self.path, self.text = str(path), text

    def __call__(self, loc: tuple) -> str:
        line = yaml_line(self.text, loc)
        return f"{self.path}{f':{line}' if line else ''}: field '{field_name(loc)}':"


def field_name(loc: tuple) -> str:
    """`('slices', 0, 'sources')` -> `slices[0].sources`."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".")


def _params(p) -> dict:
    return dict(p or {})


def groups(config) -> list[Group]:
    """The input groups of a MergeConfiguration, with the YAML location of each."""
    base = config.base_model.model.path if config.base_model else None
    out = []
    if config.models:
        paths = [m.model.model.path for m in config.models]
        params = [_params(m.parameters) for m in config.models]
        out.append(Group(("models",), paths, params, base, shared=_params(config.parameters)))
    for j, s in enumerate(config.slices or []):
        slice_base = s.base_model.model.path if s.base_model else base
        base_loc = ("slices", j, "base_model") if s.base_model else ("base_model",)
        out.append(Group(("slices", j, "sources"), [src.model.model.path for src in s.sources],
                         [_params(src.parameters) for src in s.sources], slice_base, base_loc,
                         {**_params(config.parameters), **_params(s.parameters)},
                         [tuple(src.layer_range) for src in s.sources]))
    return out


def check_contract(config, where: Where) -> None:
    """Base model, input counts and required parameters, as mergekit's spec for the method declares them."""
    from mergekit.merge_methods.base import BasePolicy, ParameterScope
    from mergekit.merge_methods.registry import get

    method = config.merge_method
    spec = get(method).spec
    c = spec.contract
    for g in groups(config):
        inputs = list(dict.fromkeys(g.paths + ([g.base] if g.base and g.loc == ("models",) else [])))
        has_base = g.base is not None and g.base in inputs
        if c.base == BasePolicy.REQUIRED and g.base is None:
            raise UserError(f"{where(g.base_loc)} method '{method}' needs a base_model "
                            "(the model the others are merged relative to); add `base_model: PATH`")
        if c.base != BasePolicy.IGNORED and g.base is not None and not has_base:
            raise UserError(f"{where(g.base_loc)} base_model {g.base} is not among {field_name(g.loc)}; "
                            f"list it there too")
        if c.base == BasePolicy.FORBIDDEN and has_base:
            raise UserError(f"{where(g.base_loc)} method '{method}' does not take a base_model; remove it")
        counted = [("models (base_model included)", len(inputs), c.min_inputs, c.max_inputs)]
        if c.min_non_base is not None or c.max_non_base is not None:
            counted.append(("models besides base_model", len(inputs) - has_base, c.min_non_base or 0, c.max_non_base))
        for what, n, lo, hi in counted:
            if n < lo or (hi is not None and n > hi):
                need = f"exactly {lo}" if lo == hi else f"at least {lo}" if n < lo else f"at most {hi}"
                raise UserError(f"{where(g.loc)} method '{method}' merges {need} {what}, got {n}: "
                                f"{', '.join(inputs)}")
        for p in spec.parameters:
            if not p.required or p.name in g.shared:
                continue
            if p.scope == ParameterScope.SHARED:
                if not any(p.name in params for params in g.params):
                    raise UserError(f"{where(('parameters',))} method '{method}' needs parameter '{p.name}'; "
                                    f"add `parameters: {{{p.name}: VALUE}}`")
                continue
            for i, (path, params) in enumerate(zip(g.paths, g.params)):
                is_base = path == g.base and c.base != BasePolicy.IGNORED
                if p.name not in params and not (is_base and p.scope == ParameterScope.NON_BASE):
                    raise UserError(f"{where(g.loc + (i,))} method '{method}' needs parameter '{p.name}' for "
                                    f"{path}; add `parameters: {{{p.name}: VALUE}}` to it")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None


def _vocab(model: Path) -> dict[str, int] | None:
    """Token -> id of a model's tokenizer.json (added tokens included), or None when it has none."""
    tj = model / "tokenizer.json"
    if not tj.is_file():
        return None
    data = _read_json(tj)
    vocab = dict((data.get("model") or {}).get("vocab") or {})
    vocab.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
    return vocab


def _locations(config) -> list[tuple[str, tuple]]:
    """Every model path of the config with the YAML location that names it (base model first)."""
    locs = []
    if config.base_model is not None:
        locs.append((config.base_model.model.path, ("base_model",)))
    for g in groups(config):
        locs += [(p, g.loc + (i, "model")) for i, p in enumerate(g.paths)]
    seen, out = set(), []
    for p, loc in locs:
        if p not in seen:
            seen.add(p)
            out.append((p, loc))
    return out


def check_models(config, where: Where) -> None:
    """Same architecture and the same tokenizer across every model (skipped for layer counts when slicing)."""
    models = _locations(config)
    cfgs = {p: _read_json(Path(p) / "config.json") for p, _ in models}
    ref, _ = models[0]
    keys = ARCH_KEYS + (("num_hidden_layers",) if config.models else ())
    for path, loc in models[1:]:
        for k in keys:
            a, b = cfgs[ref].get(k), cfgs[path].get(k)
            if a != b:
                raise UserError(f"{where(loc)} architecture mismatch: {path} has {k}={b} but {ref} has {k}={a}; "
                                "merge only models of one architecture")
    for g in groups(config):
        for i, (path, lr) in enumerate(zip(g.paths, g.layer_ranges or [])):
            n = cfgs[path].get("num_hidden_layers")
            if n is not None and not 0 <= lr[0] < lr[1] <= n:
                raise UserError(f"{where(g.loc + (i, 'layer_range'))} layer_range {list(lr)} is outside the "
                                f"{n} layers of {path}")
    if config.tokenizer_source is not None or config.tokenizer is not None:
        return  # mergekit aligns the vocabularies itself
    ref_vocab = _vocab(Path(ref))
    for path, loc in models[1:]:
        a, b = cfgs[ref].get("vocab_size"), cfgs[path].get("vocab_size")
        vocab = _vocab(Path(path))
        differ = 0
        if ref_vocab is not None and vocab is not None:
            differ = len(set(ref_vocab.items()) - set(vocab.items())) + max(0, len(vocab) - len(ref_vocab))
        if a != b or differ:
            detail = f"vocab_size {b} vs {a}" if a != b else f"{differ} token ids map to different tokens"
            raise UserError(f"{where(loc)} tokenizer mismatch: {path} and {ref} have different vocabularies "
                            f"({detail}); merging them yields gibberish. Merge models that share a tokenizer, or "
                            "set `tokenizer_source: base` (or union) so mergekit aligns them")


def _unknown(keys, allowed, what: str, where: Where, loc: tuple, suffix: str = "") -> None:
    import difflib

    for k in keys:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), list(allowed), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"{where(loc + (k,))} unknown {what} '{k}'{suffix}{hint} allowed: {', '.join(sorted(allowed))}")


def check_keys(data: dict, where: Where) -> None:
    """Keys mergekit's MergeConfiguration would silently ignore (a misspelled `tokenizer_sorce`), as errors."""
    from mergekit.config import (InputModelDefinition, InputSliceDefinition, MergeConfiguration,
                                 OutputSliceDefinition)

    _unknown(data, MergeConfiguration.model_fields, "key", where, ())
    for i, m in enumerate(data.get("models") or []):
        if isinstance(m, dict):
            _unknown(m, InputModelDefinition.model_fields, "key", where, ("models", i))
    for j, s in enumerate(data.get("slices") or []):
        if isinstance(s, dict):
            _unknown(s, OutputSliceDefinition.model_fields, "key", where, ("slices", j))
            for k, src in enumerate(s.get("sources") or []):
                if isinstance(src, dict):
                    _unknown(src, InputSliceDefinition.model_fields, "key", where, ("slices", j, "sources", k))


def _setting_values(value) -> list:
    """The plain values inside a mergekit parameter setting (a scalar, a gradient list, or filter conditions)."""
    if isinstance(value, list):
        return [v for item in value for v in _setting_values(getattr(item, "value", item))]
    return [getattr(value, "value", value)]


def check_parameters(config, where: Where) -> None:
    """Parameter names the method does not take (mergekit ignores them: `normalise: true` merged as if absent),
    values of the wrong type (`t: abc`), and a model listed twice in one group, before any tensor is read."""
    from pydantic import ValidationError

    from mergekit.merge_methods.registry import get

    specs = {p.name: p for p in get(config.merge_method).spec.parameters}
    blocks = [(("parameters",), _params(config.parameters))]
    blocks += [(("slices", j, "parameters"), _params(s.parameters)) for j, s in enumerate(config.slices or [])]
    for g in groups(config):
        blocks += [(g.loc + (i, "parameters"), p) for i, p in enumerate(g.params)]
        for i, path in enumerate(g.paths):
            first = g.paths.index(path)
            if first != i:
                raise UserError(f"{where(g.loc + (i, 'model'))} {path} is listed twice in {field_name(g.loc)} "
                                f"(also at {field_name(g.loc + (first,))}); mergekit merges each model once: "
                                "remove one, or give one entry the combined weight")
    for loc, params in blocks:
        _unknown(params, specs, "parameter", where, loc, f" for method '{config.merge_method}'")
        for name, value in params.items():
            for v in _setting_values(value):
                try:
                    specs[name].validate(v)
                except ValidationError:
                    kind = getattr(specs[name].value_type, "__name__", str(specs[name].value_type))
                    raise UserError(f"{where(loc + (name,))} parameter '{name}' must be a {kind} "
                                    f"(or a list of them for a gradient), got {str(v)[:80]!r}") from None
