"""SFT through TRL on a tiny model: it learns, every parameter moves, the output is a complete model."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from shipit.config import load_config
from shipit.demo.world import DATA_DIR
from shipit.errors import UserError
from shipit.train import get_stage


def sft_yaml(tmp_path, model, **extra):
    cfg = {"model": str(model), "output": str(tmp_path / "sft"),
           "datasets": [{"path": str(DATA_DIR / "instructions.jsonl")}],
           "trainer": {"max_steps": 12, "learning_rate": 3e-3, "warmup_steps": 1, "logging_steps": 2,
                       "per_device_train_batch_size": 8}, **extra}
    p = tmp_path / "sft.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.slow
def test_sft_learns_and_changes_every_parameter(tiny_base, tmp_path):
    stage = get_stage("sft")
    cfg = load_config(sft_yaml(tmp_path, tiny_base), stage.Config)
    out = stage.run(cfg)
    before, after = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["train_loss_last"] < m["metrics"]["train_loss_first"]
    assert m["metrics"]["steps"] == 12 and "eval_loss" in m["metrics"]
    assert m["parents"] == [str(tiny_base.resolve())]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert not (out / "checkpoints").exists()


def test_sft_bad_recipes_fail_before_training(tiny_base, tmp_path):
    stage = get_stage("sft")
    p = sft_yaml(tmp_path, tiny_base, datasets=[{"path": str(tmp_path / "missing.jsonl")}])
    with pytest.raises(UserError, match="dataset: file not found: .*missing.jsonl"):
        stage.run(load_config(p, stage.Config))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"prompt": "x"}\n')
    p = sft_yaml(tmp_path, tiny_base, datasets=[{"path": str(bad)}])
    with pytest.raises(UserError, match=r"bad.jsonl:2: row has neither 'messages' \(chat\) nor 'text'"):
        stage.run(load_config(p, stage.Config))
    assert not (tmp_path / "sft").exists()


# SmolLM2-135M-Instruct's template: stock ChatML with a default system prompt and no {% generation %} markers.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHAT = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6, of course."}]


def stock_tokenizer(tiny_base, template: str):
    """The tiny tokenizer wearing a real model's chat template, with the special tokens that template needs."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    if "<|eot_id|>" in template:
        tok.add_tokens(["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
                       special_tokens=True)
        tok.bos_token = "<|begin_of_text|>"
    tok.chat_template = template
    return tok


def trained_spans(tok, ids, mask) -> list[str]:
    """The text of each run of trained tokens."""
    spans, run = [], []
    for i, m in zip(ids, list(mask) + [0]):
        if m:
            run.append(i)
        elif run:
            spans.append(tok.decode(run)), run.clear()
    if run:
        spans.append(tok.decode(run))
    return spans


def _templates():
    from trl.chat_template_utils import llama3_chat_template, qwen2_5_chat_template

    return {"smollm2": (SMOLLM2_TEMPLATE, "<|im_end|>"), "llama3": (llama3_chat_template, "<|eot_id|>"),
            "qwen2.5": (qwen2_5_chat_template, "<|im_end|>")}


@pytest.mark.parametrize("name", ["smollm2", "llama3", "qwen2.5"])
def test_answer_only_mask_on_stock_templates_trains_each_answer_and_its_end_of_turn(tiny_base, name):
    from shipit.formats.chatmask import assistant_mask, has_generation_markers

    template, eot = _templates()[name]
    assert not has_generation_markers(template)
    tok = stock_tokenizer(tiny_base, template)
    ids, mask = assistant_mask(tok, CHAT)
    # the sequence is exactly what the template renders (what the model sees at inference)
    assert ids == list(tok.apply_chat_template(CHAT, tokenize=True, return_dict=False))
    # each answer and its end-of-turn token, nothing of the header, the prompts or the system text
    assert trained_spans(tok, ids, mask) == [f"It is 4.{eot}", f"6, of course.{eot}"]
    # with a system message of the user's own (no default one), still only the answers
    ids, mask = assistant_mask(tok, [{"role": "system", "content": "Be brief."}] + CHAT[:2])
    assert trained_spans(tok, ids, mask) == [f"It is 4.{eot}"]


def test_answer_only_mask_refuses_a_template_that_is_not_prefix_stable(tiny_base):
    from shipit.formats.chatmask import assistant_mask

    # the header counts the messages, so every longer rendering rewrites the start
    tok = stock_tokenizer(tiny_base, "{{ messages|length }}" + SMOLLM2_TEMPLATE)
    with pytest.raises(UserError, match=r"^chat template: the template is not prefix-stable .*"
                                        r"set assistant_only_loss: false$"):
        assistant_mask(tok, CHAT)
    with pytest.raises(UserError, match="no assistant answer to train on"):
        assistant_mask(stock_tokenizer(tiny_base, SMOLLM2_TEMPLATE), CHAT[:1])


def test_sft_masks_answers_itself_on_a_template_without_markers(tiny_base, tmp_path):
    """The SmolLM2 failure: LoRA SFT with answer-only loss on stock ChatML was a TRL traceback ("not
    training-compatible ... patching is not supported"); now the labels are exactly the answers, and it trains."""
    from shipit.train.common import LoraSettings, TrainerSettings, load_model
    from shipit.train.sft import make_trainer

    tok = stock_tokenizer(tiny_base, SMOLLM2_TEMPLATE)
    rows = [{"messages": CHAT}, {"messages": CHAT[:2]}]
    settings = TrainerSettings(max_steps=2, warmup_steps=0, per_device_train_batch_size=2, logging_steps=1)
    trainer = make_trainer(load_model(tiny_base), tok, rows, [], settings, tmp_path, packing=False,
                           peft=LoraSettings(r=4, alpha=8))
    labels = [[t for t in r["labels"] if t != -100] for r in trainer.train_dataset]
    assert sorted(tok.decode(x) for x in labels) == ["It is 4.<|im_end|>", "It is 4.<|im_end|>6, of course.<|im_end|>"]
    trainer.train()
    assert trainer.state.global_step == 2 and all(r["loss"] > 0 for r in trainer.state.log_history if "loss" in r)


def test_bf16_auto_follows_the_cpus_native_bf16(monkeypatch, tmp_path):
    """`bf16: auto` used to mean "CUDA only"; a CPU with native bf16 (avx512_bf16 / amx_bf16 / Arm bf16) trains in
    bf16 autocast too, one without it stays in float32, and `bf16: false` always wins."""
    from shipit import device
    from shipit.train.common import TrainerSettings, trl_kwargs

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert {"avx512_bf16", "avx512f"} <= device.cpu_flags(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert "bf16" in device.cpu_flags(cpuinfo) and device.cpu_flags(tmp_path / "absent") == set()

    monkeypatch.setattr(device, "has_cuda", lambda: False)
    for flags, want in [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx512f", "avx2"}, False),
                        (set(), False)]:
        monkeypatch.setattr(device, "cpu_flags", lambda flags=flags: flags)
        assert trl_kwargs(TrainerSettings(), tmp_path)["bf16"] is want, flags
        assert trl_kwargs(TrainerSettings(bf16=False), tmp_path)["bf16"] is False
        assert trl_kwargs(TrainerSettings(bf16=True), tmp_path)["bf16"] is True


def test_bf16_loss_curve_follows_float32(tiny_base, tmp_path):
    """On a CPU with native bf16, autocast training follows the float32 loss curve step by step within 2%
    (measured here: within 0.1% over 12 steps of the tiny model)."""
    from transformers import set_seed

    from shipit.device import cpu_bf16_native, has_cuda
    from shipit.formats.mix import DatasetSpec, load_mix
    from shipit.train.common import TrainerSettings, load_model, training_tokenizer
    from shipit.train.sft import fit

    if not (cpu_bf16_native() or has_cuda()):
        pytest.skip("this CPU has no native bf16 (no avx512_bf16 / amx_bf16 / bf16 flag): nothing to compare")
    rows = load_mix([DatasetSpec(path=DATA_DIR / "instructions.jsonl")])[:64]
    curves = {}
    for bf16 in (False, True):
        set_seed(0)
        settings = TrainerSettings(max_steps=8, learning_rate=3e-3, warmup_steps=1, logging_steps=1,
                                   per_device_train_batch_size=8, bf16=bf16)
        trainer, _ = fit(load_model(tiny_base), training_tokenizer(tiny_base), rows, [], settings, tmp_path / str(bf16))
        assert trainer.accelerator.mixed_precision == ("bf16" if bf16 else "no")
        curves[bf16] = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(curves[True]) == len(curves[False]) == 8
    assert max(abs(b - f) / f for b, f in zip(curves[True], curves[False])) < 0.02
    assert curves[True] != curves[False]  # it did run in bf16


def test_answer_only_mask_agrees_with_generation_markers_where_a_template_has_them(tiny_base):
    """On shipit's own template (with `{% generation %}` markers, so TRL masks it) the prefix-rendered mask is
    exactly the mask transformers derives from the markers."""
    from transformers import AutoTokenizer

    from shipit.formats.chatmask import assistant_mask, has_generation_markers

    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert has_generation_markers(tok.chat_template)
    for chat in (CHAT, CHAT[:2], [{"role": "system", "content": "Be brief."}] + CHAT):
        ids, mask = assistant_mask(tok, chat)
        marked = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert ids == marked["input_ids"] and mask == marked["assistant_masks"]
