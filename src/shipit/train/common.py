"""Settings shared by every training stage, and the TRL keyword arguments they become."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shipit.config import StrictModel

ReportTo = Literal["none", "tensorboard", "mlflow", "wandb", "trackio"]


class TrainerSettings(StrictModel):
    """Optimisation settings, passed through to TRL's config for the stage.

    `bf16` and `gradient_checkpointing` default to "auto", so the same recipe runs on a laptop and on a GPU node:
    bf16 autocast is on for a CUDA GPU that supports it and for a CPU with native bf16 (`shipit.device`), off
    elsewhere; gradient checkpointing is on for CUDA only. `--set trainer.bf16=false` keeps float32.
    """

    learning_rate: float = Field(5e-4, gt=0)
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 trains for `num_train_epochs`."""
    num_train_epochs: float = Field(1.0, gt=0)
    per_device_train_batch_size: int = Field(16, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(128, ge=8)
    """Tokens per packed sequence (or truncation length when packing is off)."""
    warmup_steps: int = Field(20, ge=0)
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1)
    """Checkpoint every this many steps (a crashed run resumes from the last one)."""
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    report_to: list[ReportTo] = ["none"]


def bf16_on(s: TrainerSettings) -> bool:
    """Whether these settings train in bf16 autocast ("auto": where the device computes bf16 natively)."""
    from shipit.device import bf16_supported

    return bf16_supported() if s.bf16 == "auto" else s.bf16


def as_trained(s: TrainerSettings, model):
    """A context that runs `model` in the precision these settings train it in (bf16 autocast, or none), for a
    stage's before/after measurements: accelerate wraps the model's forward in autocast only once training starts,
    so a "before" measured outside this ran in float32 and its "after" in bf16 (on a CPU with native bf16, the
    float32 pass is also the slower one)."""
    import torch

    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16_on(s))


def trl_kwargs(s: TrainerSettings, output_dir: Path) -> dict:
    """Keyword arguments common to TRL's configs (SFTConfig, DPOConfig, ...) for these settings."""
    from shipit.device import has_cuda

    cuda = has_cuda()
    return dict(
        output_dir=str(output_dir),
        learning_rate=s.learning_rate,
        max_steps=s.max_steps,
        num_train_epochs=s.num_train_epochs,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        warmup_steps=s.warmup_steps,
        lr_scheduler_type=s.lr_scheduler_type,
        weight_decay=s.weight_decay,
        seed=s.seed,
        data_seed=s.seed,
        logging_steps=s.logging_steps,
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=1,
        use_cpu=not cuda,
        bf16=bf16_on(s),
        gradient_checkpointing=cuda if s.gradient_checkpointing == "auto" else s.gradient_checkpointing,
        report_to=[r for r in s.report_to if r != "none"] or "none",
        dataloader_num_workers=0,
    )


def metrics_callback(path: Path):
    """A TrainerCallback that appends every log record (loss, lr, step) to `path` as JSONL."""
    from transformers import TrainerCallback

    class _MetricsToJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with open(path, "a") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return _MetricsToJsonl()


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why `ckpt` cannot be resumed from, or None when it is complete. The HF Trainer writes trainer_state.json
    after the weights and optimizer, so a save cut short (full disk, kill -9) lacks it or has truncated weights."""
    from shipit.errors import UserError
    from shipit.models.check import check_safetensors

    if not (ckpt / "trainer_state.json").is_file():
        return "no trainer_state.json: its save was interrupted"
    weights = list(ckpt.glob("*.safetensors")) + list(ckpt.glob("*.bin"))
    if not weights:
        return "no weights"
    try:
        for w in ckpt.glob("*.safetensors"):
            check_safetensors(w, "checkpoint")
    except UserError:
        return "truncated weights"
    return None


def say(line: str) -> None:
    """`line` to stderr in one write. stderr is unbuffered on a pipe, and `print` writes the text and its newline
    apart, so under a 2-process launch the other rank's progress bar can land between them (most likely why a test
    looking for "resume: from checkpoint-2\n" failed once in CI at c7ff327, and passed alone)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def last_checkpoint(output_dir: Path, echo=None) -> str | None:
    """The newest complete `checkpoint-N` under `output_dir`, for resuming; incomplete ones are skipped, saying so."""
    echo = echo or say
    numbered = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for ckpt in sorted(numbered, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return str(ckpt)
        echo(f"resume: skipping incomplete {ckpt.name} ({problem})")
    if numbered:
        echo("resume: no complete checkpoint; training starts from step 0")
    return None


def loss_summary(log_history: list[dict]) -> dict:
    """First and last logged training loss (the headline 'did it learn' numbers); nothing from a single log (the
    demo's 15-step DPO logged once, and the report showed its loss "0.6812 -> 0.6812" as if nothing had moved)."""
    losses = [r["loss"] for r in log_history if "loss" in r]
    if len(losses) < 2:
        return {}
    return {"train_loss_first": round(losses[0], 4), "train_loss_last": round(losses[-1], 4)}


class LoraSettings(StrictModel):
    """LoRA adapters through peft (`peft:` block of any stage); QLoRA loads the frozen base in 4 bits (CUDA only)."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    layers: list[Annotated[int, Field(ge=0)]] | None = Field(None, min_length=1)
    """Adapt only these decoder layers (0-based; None: every layer). The upper layers alone train faster (the backward
    pass stops at the lowest adapted layer) but learn less per step (RESULTS, L35)."""
    qlora: bool = False
    """Load the base model in 4-bit NF4 with bitsandbytes (needs a CUDA GPU)."""
    merge: bool = True
    """Merge the adapters into the saved model (a plain HF model); False saves the adapters alone."""

    @model_validator(mode="after")
    def _layers_need_named_modules(self):
        if self.layers is not None and isinstance(self.target_modules, str):
            raise ValueError("layers needs target_modules as a list of names (e.g. [gate_proj, up_proj, down_proj]): "
                             "peft cannot restrict all-linear to some layers")
        return self


class ModelStageConfig(StrictModel):
    """Fields every training stage has: the input model, the output directory, optional LoRA."""

    model: Path
    """A Hugging Face model directory (safetensors, config, tokenizer with a chat template)."""
    output: Path
    """Where the trained model is written (atomically, with manifest.json)."""
    peft: LoraSettings | None = None


class StageConfig(ModelStageConfig):
    """A stage run by a TRL trainer: the common fields plus the trainer's settings."""

    trainer: TrainerSettings = TrainerSettings()


def lora_config(s: LoraSettings | None, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig for these settings (None when LoRA is off)."""
    if s is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_modules,
                      layers_to_transform=sorted(set(s.layers)) if s.layers is not None else None, task_type=task_type)


def load_model(path: Path, peft: LoraSettings | None = None, kind: str = "causal"):
    """Load a model for training (`causal` LM or a 1-label `reward` head), in 4 bits when QLoRA asks for it."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from shipit.errors import UserError

    if peft is not None and peft.layers is not None:  # before loading: a large model takes minutes to load
        from transformers import AutoConfig

        n_layers = getattr(AutoConfig.from_pretrained(path), "num_hidden_layers", None)
        if n_layers is not None and max(peft.layers) >= n_layers:
            raise UserError(f"peft.layers: {path} has layers 0-{n_layers - 1}, not {max(peft.layers)}; list layers "
                            "in that range")
    kwargs: dict = {"dtype": "auto"}
    if peft is not None and peft.qlora:
        from shipit.device import has_cuda

        if not has_cuda():
            raise UserError("peft.qlora: QLoRA needs a CUDA GPU (bitsandbytes 4-bit); set qlora: false to use LoRA")
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    compressed = _quant_method(path) == "compressed-tensors"
    if compressed:  # shipit's own quantized outputs (w4a16, w8a8) and llm-compressor's
        from transformers import CompressedTensorsConfig

        kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
    with warnings.catch_warnings():  # "the quantization_config from the model will be used": only `dequantize` is ours
        warnings.filterwarnings("ignore", "You passed `quantization_config`", UserWarning)
        if kind == "reward":
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if compressed:
        _drop_quantization(model)
        print(f"{path} is quantized (compressed-tensors): training its dequantized weights; the output is not "
              "quantized (quantize it again to serve it so)", file=sys.stderr, flush=True)
    return model


def _quant_method(path: Path) -> str | None:
    config = Path(path) / "config.json"
    return ((json.loads(config.read_text()).get("quantization_config") or {}).get("quant_method")
            if config.is_file() else None)


def _drop_quantization(model) -> None:
    """Make a dequantized compressed-tensors model a plain dense one: each layer loses its quantization scheme, its
    scales and its fake-quantizing forward. Saved with them, the trained float weights went out beside the int8
    scales under the input's quantization config, and vLLM read them as int8: a DPO round on run 9's w8a8 winner
    answered every request with newlines."""
    from compressed_tensors.quantization.quant_metadata import QuantizationMetadata

    for module in model.modules():
        if hasattr(module, "quantization_scheme"):
            QuantizationMetadata.clear_quantization(module)
    for config in (model.config, getattr(model.config, "text_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            del config.quantization_config
    model.hf_quantizer = None


def training_tokenizer(path: Path, keep_pad: bool = False):
    """The model's tokenizer, with a pad token to batch with when it has none (SmolLM2, Llama 3): its unk token if
    it has one, else its eos token. Padding is masked out of the loss either way; unk comes first because code that
    masks labels by pad id would drop the eos labels too when pad == eos, and the model would not learn to stop.

    The borrowed pad is dropped again when `save_trained` writes the tokenizer, so a trained model means what its
    input meant; `keep_pad` saves it instead (a reward model: scorers batch with it and the classification head
    finds each sequence's last token by it).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        if not keep_pad:  # TRL copies the pad into the model's configs: remember what they said (SmolLM2: eos)
            tokenizer.shipit_pad_ids = {name: _json_field(Path(path) / f"{name}.json", "pad_token_id")
                                        for name in ("config", "generation_config")}
    return tokenizer


def _json_field(path: Path, key: str):
    return json.loads(path.read_text()).get(key) if path.exists() else None


def _without_borrowed_pad(model, tokenizer):
    """Undo `training_tokenizer`'s pad: none on the tokenizer, the input's own pad ids on the model's configs."""
    original = getattr(tokenizer, "shipit_pad_ids", None)
    if original is None:
        return
    tokenizer.pad_token = None
    for name, value in original.items():
        if getattr(model, name, None) is not None:
            getattr(model, name).pad_token_id = value


def save_trained(model, tokenizer, out_dir: Path, peft: LoraSettings | None, trainer=None) -> None:
    """Save a trained model in HF format; LoRA adapters are merged in unless `peft.merge` is False.

    Given the HF `trainer`, a full model is saved through it: every rank must call this, since the trainer gathers
    FSDP (FULL_STATE_DICT) / ZeRO-3 shards collectively, then writes on the main process only. Under a
    multi-process launch only rank 0 writes files; the others would write the same files into the same directory.
    """
    from peft import PeftModel

    from shipit.registry import process_rank

    main = process_rank() == 0
    _without_borrowed_pad(model.get_base_model() if isinstance(model, PeftModel) else model, tokenizer)
    if isinstance(model, PeftModel) and (peft is None or peft.merge):
        model = model.merge_and_unload()
    elif trainer is not None and not isinstance(model, PeftModel):
        trainer.save_model(str(out_dir))
        if main:
            tokenizer.save_pretrained(out_dir)
        return
    if main:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)


def train_with_resume(trainer, work_dir: Path, resume: bool) -> dict:
    """Run `trainer.train()` (from the last checkpoint when resuming); return loss and step metrics."""
    import shutil

    from shipit.registry import barrier, process_rank

    ckpt_dir = Path(trainer.args.output_dir)
    checkpoint = last_checkpoint(ckpt_dir) if resume else None
    if checkpoint is not None:
        if process_rank() == 0:
            say(f"resume: from {Path(checkpoint).name}")
        device = trainer.args.device
        if device.type == "cpu" and device.index is not None and trainer.args.world_size > 1:
            # accelerate names each rank's device of a multi-process CPU launch "cpu:0", and the Trainer loads the
            # optimizer state with map_location=args.device when there are several ranks: torch.load knows no
            # "cpu:0" and every resume failed. Plain "cpu" is the same device.
            import torch

            trainer.args.__dict__["_setup_devices"] = torch.device("cpu")
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics = loss_summary(trainer.state.log_history)
    metrics["steps"] = trainer.state.global_step
    tokens = [r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r]
    if tokens:
        metrics["train_tokens"] = int(tokens[-1])
    barrier()  # the last checkpoint may still get another rank's RNG state: delete it once all are done
    if process_rank() == 0:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics
