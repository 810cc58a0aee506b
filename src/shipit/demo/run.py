"""`shipit demo`: a bundled recipe shipped end to end on this machine's CPU: SmolLM2-135M-Instruct by default
(recipe.yaml), the from-scratch tiny world with `--preset tiny` (recipe-tiny.yaml)."""

from __future__ import annotations

from pathlib import Path

RECIPE = Path(__file__).parent / "recipe.yaml"
"""The default: SmolLM2-135M-Instruct through every stage."""
TINY_RECIPE = Path(__file__).parent / "recipe-tiny.yaml"
"""`--preset tiny`: a small Llama shipit builds and pretrains itself on the bundled synthetic world."""


def _trainer(stage: str, steps: int, batch: int = 4) -> str:
    return (f"stages.{stage}.config.trainer={{learning_rate: 1.0e-3, max_steps: {steps}, warmup_steps: 0, "
            f"logging_steps: 1, save_steps: {steps}, per_device_train_batch_size: {batch}}}")


# The smallest run of the default recipe that exercises every stage (used by the tests): SmolLM2 cut to its first 2
# decoder layers (the real tokenizer, chat template, attention shape and tied embeddings), a few steps each.
SMOKE = [
    "stages.base.config.layers=2",
    *[_trainer(s, 2) for s in ("cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety", "healed",
                               "dpo-ab")],
    "stages.cai-safety.config.generator.max_new_tokens=8",
    "stages.cai-safety.config.prompts=[{path: '${data}/harmful_prompts.jsonl', topic_field: category, "
    "where: {split: train}, limit: 3}, {path: '${data}/benign_prompts.jsonl', topic_field: category, "
    "where: {split: train}, limit: 3}]",
    "stages.cai-safety.config.helpful_limit=16",
    *[f"stages.{s}.config.{k}" for s in ("onpolicy-safety", "onpolicy-merged") for k in (
        "generator.max_new_tokens=8",
        "references=[{path: '${data}/safety_sft.jsonl', field: messages, where: {kind: benign}, limit: 6}]",
        # The cut refuses nothing: scored as if these look-alikes had to be refused, each of its answers is a
        # mistake, so the pairs reach the safety DPO.
        "scorers=[{name: refusal_policy, path: '${data}/benign_prompts.jsonl'}]")],
    "stages.replay.config.generator.max_new_tokens=8",
    "stages.replay-merged.config.generator.max_new_tokens=8",
    "stages.replay.config.instructions.files=[{path: '${data}/replay_prompts.jsonl', limit: 4}]",
    "stages.replay.config.filter.min_score=null",  # the cut's 8-token answers rarely end a sentence
    "stages.merged.config.methods=[task_arithmetic, ties]",
    "stages.merged.config.grid_points=1",   # each method at the low end of every range
    "stages.merged.config.trials=2",
    # Every task and gate runs, on a few rows: the smoke tests the plumbing, the default recipe measures.
    "stages.merged.config.eval_limit=8",
    "stages.bench.config.eval_limit=8",
    *[f"stages.{s}.config.eval_fraction=0.01" for s in ("dpo-domain", "dpo-safety", "healed")],
    # The cut refuses nothing and knows nothing: the gates stay in place (every stage runs) but cannot fail.
    "stages.bench.config.gates={domain_qa.mc_accuracy: '>= 0', safety.refusal_rate: '>= 0', "
    "safety.over_refusal: '<= 1', retention.retention_rate: '>= 0'}",
    "stages.bench.config.efficiency={prompts: 2, max_new_tokens: 4}",
    "stages.bench.config.safety_sampled.max_new_tokens=4",  # the sampled pass measured, not its length
    *[f"stages.{e}.config.{k}" for e in ("experiment", "experiment-round2")
      for k in ("users=20", "max_tokens=8", "llm_judge.max_new_tokens=4", "llm_margin=0.0")],
    # The cut's sampled answers may all rate alike (no pairs): the bundled pairs keep the DPO round's plumbing tested.
    "stages.dpo-ab.config.datasets=['${experiment}/pairs.jsonl', {path: '${data}/preference_pairs.jsonl', "
    "weight: 0.05}]",
]
PRESETS = {"default": (RECIPE, []), "tiny": (TINY_RECIPE, []), "smoke": (RECIPE, SMOKE)}


def quiet_libraries() -> None:
    """Keep the trainers' progress bars; drop per-dataset and weight-loading bars and library chatter."""
    import os

    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "WARNING")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def run_demo(out: Path, preset: str = "default", overrides: tuple[str, ...] = ()) -> Path:
    """Ship the preset's bundled recipe into `out` (cached: a second run skips every finished stage), with `overrides`
    (`--set` values) applied last; returns report.md."""
    from shipit.errors import GateFailure
    from shipit.ship.runner import ship

    quiet_libraries()
    recipe, extra = PRESETS[preset]
    report = Path(out).resolve() / "report" / "report.md"
    try:
        ship(recipe, [f"out={Path(out).resolve()}", *extra, *overrides])
    except GateFailure:  # no candidate passed the bench's gates: the stages before it and the report still ran
        if report.is_file():
            tell(report)
            print(f"report: {report}", flush=True)
        raise
    tell(report)
    return report


def tell(report: Path) -> None:
    """Print the report's "What happened" lines."""
    for line in report.read_text().split("## What happened\n", 1)[1].split("\n## ", 1)[0].strip().splitlines():
        print(line, flush=True)
