"""`shipit merge CONFIG`: a mergekit YAML, validated before any tensor is read, written atomically."""

from __future__ import annotations

from pathlib import Path

from shipit.config import load_yaml
from shipit.models.check import require_model
from shipit.errors import UserError


def merge_methods() -> list[str]:
    """Names of the merge methods this mergekit provides."""
    from mergekit.merge_methods.registry import registered_methods

    return sorted(m.spec.name for m in registered_methods())


def _model_paths(config) -> list[str]:
    refs = [m.model for m in config.models or []]
    for s in config.slices or []:
        refs += [src.model for src in s.sources]
        if s.base_model is not None:
            refs.append(s.base_model)
    if config.base_model is not None:
        refs.append(config.base_model)
    return list(dict.fromkeys(r.model.path for r in refs))


def validate_merge_data(data, path: str | Path, text: str = ""):
    """Validate a parsed mergekit config: method, schema, model paths, contract, architecture and tokenizer."""
    from pydantic import ValidationError

    from mergekit.config import MergeConfiguration

    from shipit.merge.validate import Where, check_contract, check_keys, check_models, check_parameters

    where = Where(path, text)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mergekit config (a mapping with merge_method and models)")
    check_keys(data, where)
    method = data.get("merge_method")
    methods = merge_methods()
    if method not in methods:
        raise UserError(f"{where(('merge_method',))} unknown method {method!r}; allowed: {', '.join(methods)}")
    try:
        config = MergeConfiguration.model_validate(data)
    except (ValidationError, RuntimeError) as exc:  # mergekit's own validators raise RuntimeError
        if isinstance(exc, ValidationError):
            e = exc.errors()[0]
            raise UserError(f"{where(tuple(e['loc']))} {e['msg'].removeprefix('Value error, ')}") from None
        raise UserError(f"{path}: {exc}") from None
    for model in _model_paths(config):
        require_model(Path(model), f"{path}: model",
                     hint="merge inputs must be local Hugging Face model directories")
    check_parameters(config, where)
    check_contract(config, where)
    check_models(config, where)
    return config


def load_merge_config(path: str | Path):
    """Parse a mergekit YAML into mergekit's MergeConfiguration, checked before any tensor is read."""
    data, text = load_yaml(path, "merge config")
    return validate_merge_data(data, path, text)


def run(config_path: str | Path, out: str | Path, seed: int = 0) -> Path:
    """Merge the models of a mergekit YAML into `out` (manifest records parents, method and parameters)."""
    config = load_merge_config(config_path)
    return merge(config, out, Path(config_path).read_text(), seed=seed)


def merge(config, out: str | Path, source: str = "", seed: int = 0) -> Path:
    """Run a validated MergeConfiguration into `out` atomically, with a manifest naming every parent."""
    from concurrent.futures import ThreadPoolExecutor

    from mergekit.merge import MergeOptions, run_merge

    from shipit.registry import hash_path, stage_output

    parents = {f"model{i}": Path(p) for i, p in enumerate(_model_paths(config))}
    options = MergeOptions(copy_tokenizer=True, random_seed=seed, lazy_unpickle=False, quiet=True,
                           write_model_card=False)
    cfg = config.model_dump(mode="json", exclude_none=True)
    # The merged model is about as large as one input (same architecture, dtype at most float32)
    need = max(sum(f.stat().st_size for f in Path(p).glob("*.safetensors")) for p in parents.values())
    with ThreadPoolExecutor(1) as pool, stage_output(out, "merge", cfg, parents, need_bytes=need) as run_:
        # hashlib releases the GIL: the manifest's input hashes are computed beside the merge, not after it.
        hashed = pool.submit(lambda: [hash_path(p) for p in parents.values()])
        run_merge(config, out_path=str(run_.dir), options=options, config_source=source or None)
        hashed.result()
        run_.extra["merge_method"] = config.merge_method
        run_.extra["seed"] = seed
    return Path(out)
