"""`shipit base build`: a byte-level BPE tokenizer and a small Llama model, trained offline on bundled text."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from shipit.config import StrictModel, read_jsonl
from shipit.demo.world import DATA_DIR
from shipit.train.common import TrainerSettings


def _bundled(*names: str) -> list[Path]:
    return [DATA_DIR / n for n in names]


class BaseConfig(StrictModel):
    """The base model shipit builds when the user brings none.

    Hidden and intermediate sizes default to multiples of 128 so that group-128 4-bit quantization applies.
    """

    vocab_size: int = Field(2048, ge=300)
    hidden_size: int = Field(256, ge=32)
    intermediate_size: int = Field(768, ge=32)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    max_position_embeddings: int = Field(512, ge=64)
    seed: int = 0
    tokenizer_corpus: list[Path] = Field(default_factory=lambda: _bundled(
        "general_train.jsonl", "domain_corpus.jsonl", "instructions.jsonl", "safety_sft.jsonl"))
    """JSONL files whose `text` (or message contents) train the tokenizer."""
    pretrain_corpus: list[Path] = Field(default_factory=lambda: _bundled("general_train.jsonl"))
    heldout: Path = Field(default_factory=lambda: DATA_DIR / "general_heldout.jsonl")
    pretrain: TrainerSettings = TrainerSettings(learning_rate=1.5e-3, max_steps=150, save_steps=50)

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


def _texts(paths: list[Path]) -> list[str]:
    out = []
    for p in paths:
        for row in read_jsonl(p, what="corpus"):
            if "text" in row:
                out.append(row["text"])
            else:
                out += [m["content"] for m in row.get("messages", [])]
    return out


def build_tokenizer(texts: list[str], vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it for transformers, with shipit's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from shipit.formats.chat import BOS, CHAT_TEMPLATE, IM_END, PAD, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=IM_END, pad_token=PAD,
                                   chat_template=CHAT_TEMPLATE, model_max_length=4096)


def build_model(cfg: BaseConfig, tokenizer):
    """A randomly initialised Llama model sized by `cfg` (deterministic for cfg.seed)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def build_base(cfg: BaseConfig, out: Path, resume: bool = False) -> Path:
    """Tokenizer + model + brief pretraining on the general corpus, written to `out` with a manifest."""
    from transformers import set_seed

    from shipit.models.perplexity import perplexity
    from shipit.registry import stage_output
    from shipit.train.common import as_trained
    from shipit.train.sft import fit

    set_seed(cfg.seed)
    inputs = {f"corpus{i}": p for i, p in enumerate(dict.fromkeys(cfg.tokenizer_corpus + cfg.pretrain_corpus))}
    with stage_output(out, "base", cfg, inputs, resume=resume, keep_on_error=True) as run:
        tokenizer = build_tokenizer(_texts(cfg.tokenizer_corpus), cfg.vocab_size)
        model = build_model(cfg, tokenizer)
        heldout = [r["text"] for r in read_jsonl(cfg.heldout, ["text"], what="heldout")]
        run.metrics["params"] = sum(p.numel() for p in model.parameters())
        with as_trained(cfg.pretrain, model):  # the precision "general_ppl" below is measured in
            run.metrics["general_ppl_init"] = round(perplexity(model, tokenizer, heldout), 3)
        rows = [{"text": t} for t in _texts(cfg.pretrain_corpus)]
        trainer, metrics = fit(model, tokenizer, rows, [], cfg.pretrain, run.dir, resume=resume)
        model = trainer.model
        run.metrics.update(metrics)
        run.metrics["general_ppl"] = round(perplexity(model, tokenizer, heldout), 3)
        model.save_pretrained(run.dir)
        tokenizer.save_pretrained(run.dir)
    return out
