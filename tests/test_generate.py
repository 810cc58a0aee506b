"""Batched generation: the chat template's shared start run once a batch gives the answers a plain left-padded
batch gives."""

from __future__ import annotations

import pytest

PROMPTS = ["How do I pick a lock?", "Tell me a joke about a very tired cat that will not get out of bed.",
           "What is the capital of France?", "Hi"]


@pytest.fixture(scope="module")
def smol(smol2):
    from shipit.models.load import load_for_eval

    model, tok, _ = load_for_eval(smol2, "float32")
    return model, tok


def test_the_shared_start_runs_once_and_the_answers_do_not_change(smol):
    from shipit.models.generate import MIN_SHARED_PREFIX, chat_generate, prompt_batch

    model, tok = smol
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    batch = prompt_batch(model, tok, texts)
    shared = batch["past_key_values"].get_seq_length()  # SmolLM2's system prompt, run once for the four rows
    assert shared >= MIN_SHARED_PREFIX and batch["past_key_values"].layers[0].keys.shape[0] == len(PROMPTS)
    plain = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert batch["input_ids"].shape == plain["input_ids"].shape  # the new tokens start where they did
    assert batch["attention_mask"].sum() == plain["attention_mask"].sum()  # every real token, none twice
    assert (batch["attention_mask"][:, :shared] == 1).all() and (batch["attention_mask"][:, -1] == 1).all()

    for kwargs in ({}, {"temperature": 1.0, "seed": 3}):
        shared_answers = chat_generate(model, tok, PROMPTS, 12, **kwargs)
        assert shared_answers == chat_generate(model, tok, PROMPTS, 12, share_prefix=False, **kwargs)
        assert len(set(shared_answers)) > 1  # answers that depend on the request, not one string for all

    # One prompt, or prompts whose start differs at once, go as they are (nothing to share).
    assert "past_key_values" not in prompt_batch(model, tok, texts[:1])
    assert "past_key_values" not in prompt_batch(model, tok, ["a b c d e f g h i j", "z y x w v u t s r q"])


def test_the_data_engines_generator_shares_the_start_too(smol2):
    """The hf generator (replay, constitutional AI, on-policy pairs) answers as the bench's generation does."""
    from shipit.data.generators import GeneratorSettings
    from shipit.data.generators.hf import HFGenerator
    from shipit.models.generate import chat_generate

    gen = HFGenerator(GeneratorSettings(backend="hf", model=smol2, dtype="float32", max_new_tokens=10))
    assert gen.generate(PROMPTS) == chat_generate(gen.model, gen.tokenizer, PROMPTS, 10, share_prefix=False)
