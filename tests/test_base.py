"""`shipit base build`: tokenizer with a trainable chat template, a Llama model, deterministic pretraining."""

from __future__ import annotations

import pytest

import json

from transformers import AutoModelForCausalLM, AutoTokenizer

from shipit.formats.chat import IM_END


def test_base_loads_and_pretraining_lowered_perplexity(tiny_base):
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert model.config.model_type == "llama" and model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == len(tok)
    m = json.loads((tiny_base / "manifest.json").read_text())
    assert m["stage"] == "base" and m["metrics"]["steps"] == 12
    assert m["metrics"]["general_ppl"] < 0.7 * m["metrics"]["general_ppl_init"]
    assert m["metrics"]["train_loss_last"] < m["metrics"]["train_loss_first"]


def test_chat_template_masks_exactly_the_assistant_answer_and_its_end_token(tiny_base):
    tok = AutoTokenizer.from_pretrained(tiny_base)
    msgs = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Answer: red."}]
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == "Answer: red." + IM_END
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == IM_END and tok.pad_token_id != tok.eos_token_id


@pytest.mark.slow
def test_build_is_deterministic_for_a_seed(tiny_base, tmp_path):
    from shipit.demo.base import build_base
    from tests.conftest import tiny_base_config

    again = build_base(tiny_base_config(), tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_base / name).read_bytes(), name
