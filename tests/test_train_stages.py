"""Every training stage on a tiny model: parameters move and the stage's own metric moves the right way."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shipit.demo.world import DATA_DIR
from shipit.errors import UserError
from shipit.registry import partial_dir
from shipit.train import get_stage

FAST = dict(learning_rate=3e-3, warmup_steps=1, logging_steps=2, per_device_train_batch_size=8)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def changed_fraction(before: Path, after: Path) -> float:
    a, b = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    shared = [k for k in a if k in b]
    return sum(not torch.equal(a[k], b[k]) for k in shared) / len(shared)


@pytest.mark.slow
def test_cpt_mixes_by_token_ratio_and_reports_gain_and_retention(tiny_base, tmp_path):
    stage = get_stage("cpt")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "cpt", domain=[{"path": DATA_DIR / "domain_corpus.jsonl"}],
                       general=[{"path": DATA_DIR / "general_train.jsonl"}], mix_ratio="1:2",
                       domain_heldout=DATA_DIR / "domain_heldout.jsonl",
                       general_heldout=DATA_DIR / "general_heldout.jsonl", trainer={**FAST, "max_steps": 10})
    m = manifest(stage.run(cfg))["metrics"]
    assert abs(m["general_tokens"] / m["domain_tokens"] - 2.0) < 0.05
    assert m["domain_ppl_after"] < m["domain_ppl_before"] and m["domain_ppl_gain"] > 1
    assert m["general_ppl_retention"] == pytest.approx(m["general_ppl_before"] / m["general_ppl_after"], rel=1e-2)
    assert m["train_loss_last"] < m["train_loss_first"]
    assert changed_fraction(tiny_base, tmp_path / "cpt") == 1.0


def test_cpt_mix_rules():
    stage = get_stage("cpt")
    mixed = stage.mix_by_tokens(["d" * 10], ["g" * 4, "h" * 4], 5.0, len, seed=0)
    assert mixed.count("d" * 10) == 1 and sum(map(len, mixed)) - 10 >= 50  # general cycled up to 5x domain
    with pytest.raises(Exception, match="mix_ratio must look like 'domain:general'"):
        stage.Config(model="m", output="o", domain=[{"path": "d"}], mix_ratio="five", domain_heldout="a",
                     general_heldout="b")


def test_reward_model_separates_pairs(tiny_base, tmp_path):
    stage = get_stage("reward")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "rm", datasets=[DATA_DIR / "preference_pairs.jsonl"],
                       trainer={**FAST, "max_steps": 12})
    out = stage.run(cfg)
    m = manifest(out)["metrics"]
    assert m["eval_accuracy"] >= 0.75 and m["eval_accuracy"] > m["eval_accuracy_before"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForSequenceClassification"]


@pytest.mark.slow
def test_dpo_raises_margin_and_accepts_soft_labels(tiny_base, tmp_path):
    rows = [json.loads(line) for line in (DATA_DIR / "preference_pairs.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):
        if i % 4 == 0:
            r["soft_label"] = 0.75
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stage = get_stage("dpo")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "dpo", datasets=[data], loss_type=["sigmoid", "sft"],
                       trainer={**FAST, "max_steps": 8})
    out = stage.run(cfg)
    m = manifest(out)["metrics"]
    assert m["eval_margin"] > m["eval_margin_before"] and m["eval_accuracy"] > 0.5
    assert m["eval_margin_before"] != 0 and m["eval_reward_margin"] > 0  # "before" is the base's own preference
    assert m["soft_labels"] == len(rows[::4])
    assert changed_fraction(tiny_base, out) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cpt", "dpo"])
def test_before_and_after_are_measured_in_the_precision_the_stage_trains_in(smol2, tmp_path, name):
    """Accelerate puts the model under bf16 autocast only once training starts: cpt's perplexities and DPO's own
    preference "before" ran in float32 and "after" in bf16, so a model that did not move reported a change (on the
    SmolLM2 cut, DPO margin -0.826 -> -0.8236). Here bf16 is on and the one step moves nothing (learning rate
    1e-12): before and after must agree."""
    still = {**FAST, "bf16": True, "learning_rate": 1e-12, "max_steps": 1}
    stage = get_stage(name)
    if name == "cpt":
        cfg = stage.Config(model=smol2, output=tmp_path / "o", domain=[{"path": DATA_DIR / "domain_corpus.jsonl"}],
                           general=[{"path": DATA_DIR / "general_train.jsonl"}], trainer=still,
                           domain_heldout=DATA_DIR / "domain_heldout.jsonl",
                           general_heldout=DATA_DIR / "general_heldout.jsonl")
        pairs = [("domain_ppl_before", "domain_ppl_after"), ("general_ppl_before", "general_ppl_after")]
    else:
        cfg = stage.Config(model=smol2, output=tmp_path / "o", datasets=[DATA_DIR / "preference_pairs.jsonl"],
                           trainer=still)
        pairs = [("eval_margin_before", "eval_margin"), ("eval_accuracy_before", "eval_accuracy")]
    m = manifest(stage.run(cfg))["metrics"]
    for before, after in pairs:
        assert m[before] == pytest.approx(m[after], rel=1e-5, abs=1e-6), (before, m[before], after, m[after])


def test_soft_dpo_loss_is_conservative_dpo_and_its_gradient_matches_the_formula():
    import torch.nn.functional as F

    from shipit.train.dpo_soft import soft_dpo_loss, soft_label_correction

    beta = 0.1
    h = torch.linspace(-30, 30, 13, dtype=torch.float64, requires_grad=True)
    for p in (0.0, 0.25, 0.5, 0.75, 0.875, 1.0):
        loss = soft_dpo_loss(h, torch.full_like(h, p), beta)
        (grad,) = torch.autograd.grad(loss.sum(), h)
        # d/dh of -(p log s(bh) + (1-p) log s(-bh)) = -b (p - s(bh)): a soft pair keeps pulling towards p, never to 1
        assert torch.allclose(grad, -beta * (p - torch.sigmoid(beta * h.detach())), atol=1e-12)
        # TRL's sigmoid loss plus the correction term is the same loss
        assert torch.allclose(loss, -F.logsigmoid(beta * h) + soft_label_correction(h, p, beta), atol=1e-12)
    plain = -F.logsigmoid(beta * h)
    assert torch.allclose(soft_dpo_loss(h, torch.ones_like(h), beta), plain, atol=1e-12)  # p = 1: sigmoid DPO
    zero = torch.zeros(1, requires_grad=True)
    (g,) = torch.autograd.grad(soft_dpo_loss(zero, torch.tensor([0.5]), beta).sum(), zero)
    assert g.item() == 0.0  # p = 0.5 at h = 0: nothing to learn


def _pairs_with(p: list[float]) -> list[dict]:
    rows = [json.loads(line) for line in (DATA_DIR / "preference_pairs.jsonl").read_text().splitlines()[:len(p)]]
    return [{**{k: r[k] for k in ("prompt", "chosen", "rejected")}, "soft_label": q} for r, q in zip(rows, p)]


def _loss_and_grads(tiny_base, tmp_path, p: list[float], loss_type=("sigmoid",), perturb: bool = False):
    """The DPO stage's trainer loss on one batch of pairs with soft labels `p`, and the gradient of every weight."""
    from shipit.train.common import load_model, training_tokenizer
    from shipit.train.dpo import Config, make_trainer

    torch.manual_seed(0)
    model = load_model(tiny_base)
    if perturb:  # move the policy away from its reference so that h != 0
        with torch.no_grad():
            for w in model.parameters():
                w.add_(0.05 * torch.randn_like(w))
    cfg = Config(model=tiny_base, output=tmp_path / "o", datasets=[tmp_path / "unused"], loss_type=list(loss_type),
                 trainer={**FAST, "per_device_train_batch_size": len(p), "bf16": False})  # exact comparisons
    rows = _pairs_with(p)
    trainer = make_trainer(model, training_tokenizer(tiny_base), rows, rows[:1], cfg, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    model.zero_grad()
    loss = trainer.compute_loss(trainer.model, trainer._prepare_inputs(batch))
    loss.backward()
    return trainer, batch, loss.item(), {n: w.grad.clone() for n, w in model.named_parameters()}


def test_dpo_before_is_the_starting_models_own_preference(tiny_base, tmp_path):
    """Held-out accuracy and margin before DPO were TRL's implicit rewards, 0 by construction (policy == reference);
    now they are the base model's own per-token log-likelihood preference, checked against a direct computation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.train.common import load_model, training_tokenizer
    from shipit.train.dpo import Config, make_trainer
    from shipit.train.dpo_soft import own_preference

    rows = [json.loads(line) for line in (DATA_DIR / "preference_pairs.jsonl").read_text().splitlines()]
    held = [{**{k: r[k] for k in ("prompt", "chosen", "rejected")}, "soft_label": q}
            for r, q in zip(rows[::31], [1.0, 0.2, 1.0, 0.9, 1.0, 0.0, 1.0, 1.0])]
    # float32: bf16 autocast would add rounding noise to numbers compared exactly below
    cfg = Config(model=tiny_base, output=tmp_path / "o", datasets=[tmp_path / "unused"],
                 trainer={**FAST, "bf16": False})
    trainer = make_trainer(load_model(tiny_base), training_tokenizer(tiny_base), held, held, cfg, tmp_path)
    got = own_preference(trainer)

    tok, model = AutoTokenizer.from_pretrained(tiny_base), AutoModelForCausalLM.from_pretrained(tiny_base).eval()

    def mean_logp(prompt, answer):
        start = len(tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False))
        ids = torch.tensor([tok.apply_chat_template(prompt + answer, return_dict=False)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        return logp[start - 1:].mean().item()

    margins = []
    for r in held:
        better, worse = (r["chosen"], r["rejected"]) if r["soft_label"] >= 0.5 else (r["rejected"], r["chosen"])
        margins.append(mean_logp(r["prompt"], better) - mean_logp(r["prompt"], worse))
    assert got["margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-3)
    assert got["accuracy"] == sum(m > 0 for m in margins) / len(margins)
    implicit = trainer.evaluate()
    assert implicit["eval_rewards/margins"] == 0 and got["margin"] != 0  # what "before" used to report


def test_dpo_trainer_applies_each_pairs_soft_label(tiny_base, tmp_path):
    """At step 0 policy == reference, so h = 0: a p = 0.5 pair has zero gradient (the old 4-copies scheme and a
    trainer ignoring soft labels do not), p = 1 is exactly TRL's sigmoid DPO, and `sft` added to the loss still
    counts; away from h = 0 the loss equals the formula computed from the model's own log-probabilities."""
    _, _, loss, grads = _loss_and_grads(tiny_base, tmp_path, [0.5] * 4)
    assert loss == pytest.approx(math.log(2), abs=1e-5)
    assert max(g.abs().max().item() for g in grads.values()) < 1e-7
    _, _, loss1, grads1 = _loss_and_grads(tiny_base, tmp_path, [1.0] * 4)
    _, _, _, sft_only = _loss_and_grads(tiny_base, tmp_path, [0.5] * 4, loss_type=("sft",))
    _, _, _, both = _loss_and_grads(tiny_base, tmp_path, [0.5] * 4, loss_type=("sigmoid", "sft"))
    assert all(torch.allclose(both[k], sft_only[k], atol=1e-6) for k in both)
    assert max(g.abs().max().item() for g in grads1.values()) > 1e-4  # p = 1 does push at h = 0

    p = [0.2, 0.7, 1.0, 0.5]
    trainer, batch, loss, _ = _loss_and_grads(tiny_base, tmp_path, p, perturb=True)
    with torch.no_grad():
        def seq_logps(model):
            ids, mask = batch["input_ids"], batch["completion_mask"][:, 1:]
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1].float()
            return (torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1) * mask).sum(1)
        from transformers import AutoModelForCausalLM

        pol, ref = seq_logps(trainer.model), seq_logps(AutoModelForCausalLM.from_pretrained(tiny_base))
        (pc, pr), (rc, rr) = pol.chunk(2), ref.chunk(2)
        h = (pc - rc) - (pr - rr)
    from shipit.train.dpo_soft import soft_dpo_loss

    assert h.abs().min() > 0.01 and sorted(batch["soft_label"].tolist()) == pytest.approx(sorted(p))  # shuffled
    assert loss == pytest.approx(soft_dpo_loss(h, batch["soft_label"], 0.1).mean().item(), rel=1e-4)
    assert loss1 == pytest.approx(math.log(2), abs=1e-5)


def test_bad_preference_rows_fail_with_file_and_line(tiny_base, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a", "reject": "b"}\n')
    stage = get_stage("dpo")
    with pytest.raises(UserError, match=r"pairs.jsonl:2: missing field 'rejected'"):
        stage.run(stage.Config(model=tiny_base, output=tmp_path / "o", datasets=[data]))
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b", "soft_label": 1.5}\n')
    with pytest.raises(UserError, match=r"pairs.jsonl:1: field 'soft_label' must be a probability in \[0, 1\]"):
        stage.run(stage.Config(model=tiny_base, output=tmp_path / "o", datasets=[data]))


PPO = dict(iterations=24, rollout_batch_size=16, mini_batch_size=8, ppo_epochs=4, max_new_tokens=12,
           learning_rate=1e-3, kl_coef=0.02, kl_control="adaptive", target_kl=2.0)


@pytest.mark.slow
def test_ppo_raises_a_toy_reward_with_bounded_kl(tiny_base, tmp_path):
    stage = get_stage("ppo")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "ppo", prompts=[DATA_DIR / "instructions.jsonl"],
                       reward_functions=["tests.rl_rewards:letter_e"], ppo=PPO)
    out = stage.run(cfg)
    m = manifest(out)["metrics"]
    assert m["reward_last"] > m["reward_first"] * 1.15
    assert 0 < m["kl_last"] < 6
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == list(range(1, 25))
    assert changed_fraction(tiny_base, out) > 0.9


@pytest.mark.slow
def test_ppo_resumes_from_its_checkpoint_after_a_crash(tiny_base, tmp_path):
    from tests import rl_rewards

    stage = get_stage("ppo")
    settings = {**PPO, "iterations": 6, "save_every": 2, "max_new_tokens": 6}
    cfg = stage.Config(model=tiny_base, output=tmp_path / "ppo", prompts=[DATA_DIR / "instructions.jsonl"],
                       reward_functions=["tests.rl_rewards:letter_e_flaky"], ppo=settings)
    rl_rewards.CALLS.update(n=0, fail_at=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        stage.run(cfg)
    assert (partial_dir(tmp_path / "ppo") / "checkpoints" / "ppo.pt").exists()
    rl_rewards.CALLS.update(fail_at=None)
    out = stage.run(cfg, resume=True)
    history = [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 3, 4, 5, 6]  # iteration 3 ran, crashed before its checkpoint, ran again
    assert manifest(out)["metrics"]["iterations"] == 6


@pytest.mark.slow
def test_grpo_raises_a_toy_reward(tiny_base, tmp_path):
    stage = get_stage("grpo")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "grpo", prompts=[DATA_DIR / "instructions.jsonl"],
                       reward_functions=["tests.rl_rewards:letter_e"], num_generations=8, max_completion_length=12,
                       trainer={**FAST, "max_steps": 40, "learning_rate": 2e-3, "per_device_train_batch_size": 16,
                                "warmup_steps": 0})
    out = stage.run(cfg)
    m = manifest(out)["metrics"]
    assert m["reward_last"] > m["reward_first"] * 1.15
    assert m["frac_reward_zero_std"] < 0.5
    assert changed_fraction(tiny_base, out) > 0.9


def test_grpo_says_when_its_rewards_give_no_signal(tiny_base, tmp_path, capsys):
    """Equal rewards within every group leave every advantage 0: the run says so, where TRL logs only a loss of 0
    (the stock SmolLM2 with `answer_format` on a GPU, benchmarks/RESULTS.md)."""
    stage = get_stage("grpo")
    cfg = stage.Config(model=tiny_base, output=tmp_path / "grpo", prompts=[DATA_DIR / "instructions.jsonl"],
                       reward_functions=["tests.rl_rewards:constant"], num_generations=2, max_completion_length=4,
                       trainer={**FAST, "max_steps": 2, "per_device_train_batch_size": 2, "warmup_steps": 0})
    m = manifest(stage.run(cfg))["metrics"]
    assert m["frac_reward_zero_std"] == 1.0
    assert "GRPO had no signal and the model did not learn" in capsys.readouterr().err


def test_grpo_batch_that_splits_a_prompts_completions_is_one_line_naming_the_fields():
    from shipit.train.grpo import grpo_args

    cfg = get_stage("grpo").Config(model="m", output="o", prompts=["p"], reward_functions=["brevity"],
                                   num_generations=8, trainer={"per_device_train_batch_size": 2,
                                                               "gradient_accumulation_steps": 2})
    with pytest.raises(UserError, match=r"^trainer.per_device_train_batch_size \(2\) x "
                       r"trainer.gradient_accumulation_steps \(2\) x processes must be a multiple of "
                       r"num_generations \(8\).*--set trainer.per_device_train_batch_size=8$"):
        grpo_args(cfg)
    cfg.trainer.gradient_accumulation_steps = 4
    assert grpo_args(cfg).generation_batch_size == 8


def test_rl_configs_need_a_reward():
    with pytest.raises(Exception, match="give reward_functions, a reward_model, or both"):
        get_stage("grpo").Config(model="m", output="o", prompts=["p"])
    with pytest.raises(Exception, match="give reward_functions or a reward_model"):
        get_stage("ppo").Config(model="m", output="o", prompts=["p"])
    with pytest.raises(UserError, match="unknown reward function 'fancy'; built-ins: answer_format"):
        from shipit.train.rewards import resolve_reward
        resolve_reward("fancy")


@pytest.mark.slow
def test_lora_adapters_are_merged_by_default_or_kept(tiny_base, tmp_path):
    stage = get_stage("sft")
    common = dict(model=tiny_base, datasets=[{"path": DATA_DIR / "instructions.jsonl"}], trainer={**FAST, "max_steps": 4})
    merged = stage.run(stage.Config(output=tmp_path / "merged", peft={"r": 4, "alpha": 8}, **common))
    a, b = load_file(tiny_base / "model.safetensors"), load_file(merged / "model.safetensors")
    assert a.keys() == b.keys()  # a plain model: mergekit, llm-compressor and vLLM read it as is
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed and all("proj" in k for k in changed)  # only the LoRA-targeted linears moved
    kept = stage.run(stage.Config(output=tmp_path / "kept", peft={"r": 4, "alpha": 8, "merge": False}, **common))
    assert (kept / "adapter_config.json").exists() and (kept / "adapter_model.safetensors").exists()
    assert not (kept / "model.safetensors").exists()
    with pytest.raises(UserError, match="QLoRA needs a CUDA GPU"):
        stage.run(stage.Config(output=tmp_path / "q", peft={"qlora": True}, **common))


@pytest.mark.slow
def test_lora_on_some_layers_moves_only_those_layers(tiny_base, tmp_path):
    stage = get_stage("sft")
    common = dict(model=tiny_base, datasets=[{"path": DATA_DIR / "instructions.jsonl"}], trainer={**FAST, "max_steps": 2})
    out = stage.run(stage.Config(output=tmp_path / "upper", peft={"r": 4, "alpha": 8, "dropout": 0.0,
                                                                  "target_modules": ["gate_proj", "down_proj"],
                                                                  "layers": [1]}, **common))
    a, b = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed == {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.down_proj.weight"}
    with pytest.raises(UserError, match=r"peft.layers: .* has layers 0-1, not 2; list layers in that range"):
        stage.run(stage.Config(output=tmp_path / "past", peft={"target_modules": ["q_proj"], "layers": [0, 2]},
                               **common))
    assert not (tmp_path / "past").exists()
    with pytest.raises(Exception, match="layers needs target_modules as a list of names"):
        stage.Config(output=tmp_path / "all", peft={"layers": [1]}, **common)


@pytest.mark.slow
def test_a_quantized_model_trains_as_its_dequantized_weights_into_a_plain_model(tiny_base, tmp_path):
    # What a DPO round on run 9's w8a8 winner did: the trained float weights went out beside the int8 scales under
    # the input's quantization config, vLLM read them as int8, and the model answered every request with newlines.
    from shipit.quantize.run import run as quantize

    q = quantize("w8a8", tiny_base, tmp_path / "q8")
    qt = load_file(q / "model.safetensors")
    stage = get_stage("sft")
    out = stage.run(stage.Config(model=q, output=tmp_path / "sft", datasets=[{"path": DATA_DIR / "instructions.jsonl"}],
                                 peft={"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
                                 trainer={**FAST, "max_steps": 2}))
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    t = load_file(out / "model.safetensors")
    assert t.keys() == load_file(tiny_base / "model.safetensors").keys()  # no scales: a plain model
    for name in (k.removesuffix("_scale") for k in qt if k.endswith(".weight_scale")):
        assert qt[name].dtype == torch.int8 and t[name].dtype == torch.float32
        dequantized = qt[name].float() * qt[name + "_scale"].float()
        if "q_proj" in name:  # trained from the dequantized weights
            assert 0 < (t[name] - dequantized).abs().max() < 0.1 * dequantized.abs().max()
        else:  # untouched by LoRA: exactly the dequantized weights
            assert torch.equal(t[name], dequantized), name


@pytest.fixture(scope="module")
def padless(tiny_base, tmp_path_factory) -> Path:
    """The tiny base with no pad token anywhere, as SmolLM2 comes out of import and as Llama 3 ships."""
    import shutil

    from transformers import AutoTokenizer

    dst = tmp_path_factory.mktemp("models") / "padless"
    shutil.copytree(tiny_base, dst)
    tok = AutoTokenizer.from_pretrained(dst)
    tok.pad_token = None
    tok.save_pretrained(dst)
    for name, pad in (("config.json", tok.eos_token_id), ("generation_config.json", None)):  # as SmolLM2's
        cfg = {k: v for k, v in json.loads((dst / name).read_text()).items() if k != "pad_token_id"}
        (dst / name).write_text(json.dumps(cfg if pad is None else {**cfg, "pad_token_id": pad}))
    assert AutoTokenizer.from_pretrained(dst).pad_token is None
    return dst


def _head(src: Path, dst: Path, n: int = 16) -> Path:
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))
    return dst


def _padless_config(stage: str, model: Path, tmp: Path) -> dict:
    quick = {**FAST, "max_steps": 2, "per_device_train_batch_size": 4}
    pairs, chats = _head(DATA_DIR / "preference_pairs.jsonl", tmp / "pairs.jsonl"), \
        _head(DATA_DIR / "instructions.jsonl", tmp / "chats.jsonl")
    common = dict(model=model, output=tmp / stage)
    return {
        "sft": dict(datasets=[chats], eval_fraction=0.1, trainer=quick),
        "cpt": dict(domain=[_head(DATA_DIR / "domain_corpus.jsonl", tmp / "d.jsonl")],
                    general=[_head(DATA_DIR / "general_train.jsonl", tmp / "g.jsonl")], mix_ratio="1:1",
                    domain_heldout=_head(DATA_DIR / "domain_heldout.jsonl", tmp / "dh.jsonl", 8),
                    general_heldout=_head(DATA_DIR / "general_heldout.jsonl", tmp / "gh.jsonl", 8), trainer=quick),
        "dpo": dict(datasets=[pairs], trainer=quick),
        "reward": dict(datasets=[pairs], trainer=quick),
        "grpo": dict(prompts=[chats], reward_functions=["brevity"], num_generations=2, max_completion_length=4,
                     trainer={**quick, "max_steps": 1}),
        "ppo": dict(prompts=[chats], reward_functions=["brevity"],
                    ppo=dict(iterations=1, rollout_batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4)),
    }[stage] | common


@pytest.mark.parametrize("name", ["sft", "cpt", "dpo", "reward", "grpo", "ppo"])
def test_every_stage_trains_a_model_without_a_pad_token_and_keeps_its_meaning(padless, tmp_path, name):
    """Padding borrows eos for the run; the saved tokenizer still has no pad token and the configs say what the
    input's said (a reward model keeps the borrowed one: scorers batch with it and its head finds the last token by
    it)."""
    from transformers import AutoTokenizer

    stage = get_stage(name)
    out = stage.run(stage.Config(**_padless_config(name, padless, tmp_path)))
    tok, config = AutoTokenizer.from_pretrained(out), json.loads((out / "config.json").read_text())
    if name == "reward":
        assert tok.pad_token == tok.eos_token and config["pad_token_id"] == tok.eos_token_id
    else:
        assert tok.pad_token is None and config.get("pad_token_id") == tok.eos_token_id  # as in the input
        generation = json.loads((out / "generation_config.json").read_text())
        assert generation.get("pad_token_id") is None


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_default_lora_targets_fit_real_architectures_and_leave_tied_embeddings_alone(arch):
    """`all-linear` on a Llama (SmolLM2, Llama 3) or Qwen2 layout with tied embeddings: the seven projections of every
    layer, never lm_head (it is the embedding matrix: an adapter there would also move the input embeddings)."""
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from shipit.train.common import LoraSettings, lora_config

    config = AutoConfig.for_model(arch, vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = get_peft_model(AutoModelForCausalLM.from_config(config), lora_config(LoraSettings()))
    adapted = {n.split(".lora_A.")[0].split(".")[-1] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    layers = {n.split(".layers.")[1].split(".")[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert layers == {"0", "1"}
    assert [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n] == []


def test_loss_summary_needs_two_logs_to_say_what_moved():
    from shipit.train.common import loss_summary

    assert loss_summary([{"loss": 0.68, "step": 10}, {"train_runtime": 9.0}]) == {}  # one log: no "0.68 -> 0.68"
    assert loss_summary([{"loss": 1.5}, {"eval_loss": 1.2}, {"loss": 0.5}]) == {"train_loss_first": 1.5,
                                                                                "train_loss_last": 0.5}
