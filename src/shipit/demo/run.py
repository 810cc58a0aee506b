"""`shipit demo`: the bundled recipe (src/shipit/demo/recipe.yaml) shipped end to end on this machine's CPU."""

from __future__ import annotations

from pathlib import Path

RECIPE = Path(__file__).parent / "recipe.yaml"

# The smallest run that exercises every stage (used by the tests): tiny model, a few steps each.
SMOKE = [
    "stages.base.config.vocab_size=512", "stages.base.config.hidden_size=64", "stages.base.config.intermediate_size=128",
    "stages.base.config.num_layers=2", "stages.base.config.num_heads=2",
    "stages.base.config.pretrain={learning_rate: 3.0e-3, max_steps: 12, warmup_steps: 2, logging_steps: 4}",
    "stages.cpt-domain.config.trainer={learning_rate: 1.0e-3, max_steps: 4, warmup_steps: 1, logging_steps: 2}",
    "stages.sft-domain.config.trainer={learning_rate: 1.0e-3, max_steps: 4, warmup_steps: 1, logging_steps: 2}",
    "stages.sft-safety.config.trainer={learning_rate: 1.0e-3, max_steps: 4, warmup_steps: 1, logging_steps: 2}",
    *[f"stages.{s}.config.trainer={{learning_rate: 1.0e-3, max_steps: 2, warmup_steps: 0, logging_steps: 1, "
      "per_device_train_batch_size: 4}" for s in ("dpo-domain", "dpo-safety")],
    "stages.cai-safety.config.generator.max_new_tokens=6",
    "stages.cai-safety.config.prompts=[{path: '${data}/harmful_prompts.jsonl', topic_field: category, "
    "where: {split: train}, limit: 3}, {path: '${data}/benign_prompts.jsonl', topic_field: category, "
    "where: {split: train}, limit: 3}]",
    "stages.iterate.config.data.generator.max_new_tokens=4",
    "stages.iterate.config.data.instructions.files=[{path: '${data}/instructions.jsonl', field: messages, "
    "label: instructions, limit: 4}]",
    "stages.iterate.config.train.sft={learning_rate: 1.0e-3, max_steps: 2, warmup_steps: 0, logging_steps: 1}",
    "stages.merged.config={methods: [linear], sampler: grid, grid_points: 2, trials: 2}",
    "stages.merged-w4a16.config.method=w8a8",  # group-128 int4 needs hidden sizes the tiny model does not have
    "stages.bench.config.gates={general_ppl.ppl: '<= 2000'}",
    "stages.bench.config.efficiency={prompts: 2, max_new_tokens: 4}",
]


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


def run_demo(out: Path, preset: str = "default") -> Path:
    """Ship the bundled recipe into `out` (cached: a second run skips every finished stage); returns report.md."""
    from shipit.ship.runner import ship

    quiet_libraries()
    overrides = [f"out={Path(out).resolve()}", *(SMOKE if preset == "smoke" else [])]
    ship(RECIPE, overrides)
    report = Path(out).resolve() / "report" / "report.md"
    for line in report.read_text().split("## What happened\n", 1)[1].split("\n## ", 1)[0].strip().splitlines():
        print(line, flush=True)
    return report
