"""`shipit merge CONFIG`: a mergekit YAML, validated before any tensor is read, written atomically."""

from __future__ import annotations

from pathlib import Path

from shipit.config import load_yaml, require_path
from shipit.errors import UserError


def merge_methods() -> list[str]:
    """Names of the merge methods this mergekit provides."""
    from mergekit.merge_methods.registry import registered_methods

    return sorted(m.spec.name for m in registered_methods())


def _model_paths(config) -> list[str]:
    refs = [m.model for m in config.models or []]
    for s in config.slices or []:
        refs += [src.model for src in s.sources]
    if config.base_model is not None:
        refs.append(config.base_model)
    return list(dict.fromkeys(r.model.path for r in refs))


def load_merge_config(path: str | Path):
    """Parse a mergekit YAML into mergekit's MergeConfiguration; check the method and every model path."""
    from pydantic import ValidationError

    from mergekit.config import MergeConfiguration

    data, _ = load_yaml(path, "merge config")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mergekit config (a mapping with merge_method and models)")
    method = data.get("merge_method")
    methods = merge_methods()
    if method not in methods:
        raise UserError(f"{path}: field 'merge_method': unknown method {method!r}; allowed: {', '.join(methods)}")
    try:
        config = MergeConfiguration.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise UserError(f"{path}: field '{'.'.join(map(str, e['loc']))}': {e['msg']}") from None
    for model in _model_paths(config):
        require_path(Path(model) / "config.json", f"{path}: model", kind="file",
                     hint="merge inputs must be local Hugging Face model directories")
    return config


def run(config_path: str | Path, out: str | Path, seed: int = 0) -> Path:
    """Merge the models of a mergekit YAML into `out` (manifest records parents, method and parameters)."""
    from mergekit.merge import MergeOptions, run_merge

    from shipit.registry import stage_output

    config = load_merge_config(config_path)
    parents = {f"model{i}": Path(p) for i, p in enumerate(_model_paths(config))}
    options = MergeOptions(copy_tokenizer=True, random_seed=seed, lazy_unpickle=False, quiet=True,
                           write_model_card=False)
    with stage_output(out, "merge", config.model_dump(mode="json", exclude_none=True), parents) as run_:
        run_merge(config, out_path=str(run_.dir), options=options, config_source=Path(config_path).read_text())
        run_.extra["merge_method"] = config.merge_method
    return Path(out)
