"""Data engine: generators (HF, OpenAI-compatible, vLLM), filters, synth, constitutional AI, iterate."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import pytest

from shipit.config import load_config
from shipit.data import filters
from shipit.data.generators import GeneratorSettings, make_generator
from shipit.errors import UserError
from shipit.registry import read_manifest
from tests.fake_upstream import wait_for

REPO = Path(__file__).resolve().parent.parent
CONSTITUTION = REPO / "src/shipit/demo/data/constitution.yaml"


# --- a deterministic OpenAI-compatible endpoint (stands in for an external service) ---------------------------

def _answer(body: dict) -> str:
    msgs = body["messages"]
    last = msgs[-1]["content"]
    if "Answer with A or B" in last:
        a = re.search(r"\(A\) (.*)\n\(B\)", last).group(1)
        return "A" if "polite" in a else "B"
    if "Score: N" in last:
        return "Score: 7"
    if m := re.match(r"(Write one question|Ask something|Give a task) about (\w+)\.", last):
        kind, topic = m.groups()
        if kind == "Give a task":
            return f"Write a short poem about {topic} and the sea."
        return f"Tell me one useful fact about {topic} in plain words."  # the same for two templates: duplicates
    if len(msgs) > 1:
        return f"revision after {len(msgs)} messages."
    if body.get("temperature", 0) >= 1.0:
        return "bad bad bad bad bad bad"
    return "polite answer with clear words." if body.get("seed", 0) % 2 == 0 else "rude answer with more words."


def _logprobs(text: str, body: dict) -> dict | None:
    if body.get("logprobs") and text == "Score: 7":  # a judge's verdict: "7" half the time, " 9" or "3" a quarter
        top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in (("7", .5), (" 9", .25), ("3", .25))]
        return {"content": [{"token": "7", "logprob": math.log(0.5), "bytes": None, "top_logprobs": top}]}
    if not body.get("logprobs") or text not in ("A", "B"):
        return None
    other = "B" if text == "A" else "A"
    top = [{"token": text, "logprob": math.log(0.9), "bytes": None},
           {"token": f" {other}", "logprob": math.log(0.1), "bytes": None}]
    return {"content": [{"token": text, "logprob": math.log(0.9), "bytes": None, "top_logprobs": top}]}


def make_app(state: dict):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        state["calls"].append(body)
        if state["fail_after"] is not None and len(state["calls"]) > state["fail_after"]:
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
        text = _answer(body)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                             "logprobs": _logprobs(text, body) if state["logprobs"] else None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return app


@pytest.fixture(scope="module")
def endpoint():
    """(base_url, state) of the fake endpoint, served by uvicorn in a thread on a free loopback port."""
    import uvicorn

    from shipit.models.vllm_server import free_port

    state = {"calls": [], "fail_after": None, "logprobs": True}
    server = uvicorn.Server(uvicorn.Config(make_app(state), host="127.0.0.1", port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30, what="the fake endpoint to start")
    assert server.started, "the fake endpoint did not start"
    yield f"http://127.0.0.1:{server.config.port}/v1", state
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def api(endpoint):
    url, state = endpoint
    state.update(calls=[], fail_after=None, logprobs=True)
    return url, state


def openai_gen(url: str, **kw) -> dict:
    return {"backend": "openai", "base_url": url, "model_name": "fake", "max_retries": 0, "batch_size": 2, **kw}


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# --- filters -----------------------------------------------------------------------------------------------------

def test_near_duplicates_removes_exactly_the_planted_ones():
    base = [f"Tell me a story about a {a} who lives near the {b} and likes to sing every morning."
            for a, b in [("cat", "river"), ("dog", "forest"), ("horse", "school"), ("duck", "market")]]
    planted = [base[0].replace("every morning", "every single morning"), base[2].upper(), base[1]]
    texts = base[:2] + [planted[0]] + base[2:] + planted[1:]
    assert filters.near_duplicates(texts, threshold=0.7) == [2, 5, 6]
    assert filters.near_duplicates(base, threshold=0.7) == []


def test_threshold_topk_balance_and_pairs():
    scored = [{"id": i, "score": s, "topic": t} for i, (s, t) in
              enumerate([(0.9, "a"), (0.1, "a"), (0.8, "b"), (0.2, "b"), (0.7, "a"), (0.6, "c")])]
    assert [r["id"] for r in filters.above_threshold(scored, 0.5)] == [0, 2, 4, 5]
    assert [r["id"] for r in filters.top_percent(scored, 50)] == [0, 2, 4]
    balanced = filters.balance(scored, 1, seed=0)
    assert sorted(r["topic"] for r in balanced) == ["a", "b", "c"]
    assert filters.best_worst_pairs(scored[:2], margin=0.5) == (scored[0], scored[1])
    assert filters.best_worst_pairs(scored[4:], margin=0.5) is None


# --- synth -------------------------------------------------------------------------------------------------------

def synth_cfg(url: str, out: Path, topics=("cats", "trees", "boats", "bread"), **gen):
    from shipit.data.synth import SynthConfig

    return SynthConfig.model_validate({
        "generator": openai_gen(url, **gen),
        "instructions": {"topics": list(topics),
                         "templates": ["Write one question about {topic}.", "Ask something about {topic}.",
                                       "Give a task about {topic}."]},
        "scorers": [{"name": "length"}, {"name": "repetition"}, {"name": "format"}],
        "filter": {"min_score": 0.5, "pair_margin": 0.3}, "output": str(out)})


def test_synth_dedups_filters_and_pairs_with_provenance(api, tmp_path):
    from shipit.data import synth

    url, state = api
    out = synth.run(synth_cfg(url, tmp_path / "synth"))
    m = read_manifest(out)["metrics"]
    # 4 topics x 3 templates; two templates give the same instruction per topic: 4 planted duplicates.
    assert (m["instructions_generated"], m["near_duplicates_removed"], m["instructions"]) == (12, 4, 8)
    # 8 instructions x 3 temperatures; the temperature-1.0 answers are planted low scorers (repetitive, no stop).
    assert m["candidates"] == 24 and m["below_threshold"] == 8
    sft, pairs = rows(out / "sft.jsonl"), rows(out / "pairs.jsonl")
    assert len(sft) == 8 and all(r["provenance"]["temperature"] in (0.3, 0.7) for r in sft)
    assert all(r["provenance"]["scores"] == {"length": 1.0, "repetition": 1.0, "format": 1.0} for r in sft)
    assert all(r["provenance"]["generator"]["base_url"] == url for r in sft)
    assert len(pairs) == 8
    for p in pairs:
        assert p["rejected"][0]["content"] == "bad bad bad bad bad bad" and p["prompt"][0]["role"] == "user"
        assert p["provenance"]["chosen"]["score"] - p["provenance"]["rejected"]["score"] >= 0.3
        assert p["provenance"]["rejected"]["temperature"] == 1.0
    assert len(state["calls"]) == 12 + 24
    assert {c["top_p"] for c in state["calls"][12:]} == {0.9}


def test_synth_resumes_without_regenerating_rows(api, tmp_path):
    from shipit.data import synth
    from shipit.registry import partial_dir

    url, state = api
    cfg = synth_cfg(url, tmp_path / "synth", topics=("cats", "boats"))  # 6 instructions, 4 after dedup
    # 6 instruction requests (3 batches) + the first candidate batch (2 prompts x 3 temperatures) succeed.
    state["fail_after"] = 6 + 6
    with pytest.raises(UserError, match="HTTP 500"):
        synth.run(cfg)
    partial = partial_dir(cfg.output)
    assert len(rows(partial / "candidates.jsonl")) == 6
    with open(partial / "candidates.jsonl", "a") as f:  # a crash in the middle of a write
        f.write('{"key": "half a row')
    state.update(calls=[], fail_after=None)
    synth.run(cfg, resume=True)
    assert len(state["calls"]) == 6  # only the second batch of candidates, nothing that was written
    cands = rows(cfg.output / "candidates.jsonl")
    keys = [(c["key"], c["provenance"]["temperature"]) for c in cands]
    assert len(cands) == 12 and len(set(keys)) == 12
    m = read_manifest(cfg.output)["metrics"]
    assert m["instructions_resumed"] == 6 and m["candidates_resumed"] == 2 and m["sft_rows"] == 4


def test_judge_scorer_parses_the_endpoint_verdict(api):
    from shipit.data.scorers import Scoring, ScorerSpec, parse_score

    url, _ = api
    scoring = Scoring([ScorerSpec(name="judge", judge=GeneratorSettings(**openai_gen(url)))])
    assert [r["score"] for r in scoring(["q1", "q2"], ["a1", "a2"])] == [round(6 / 9, 4)] * 2
    assert (parse_score("Score: 10"), parse_score("no idea"), parse_score("3/10")) == (1.0, None, pytest.approx(2 / 9))


def test_expected_verdict_is_the_mean_score_under_the_judges_digit_probabilities(api):
    from shipit.data.scorers import Scoring, ScorerSpec

    url, state = api
    scoring = Scoring([ScorerSpec(name="judge", judge=GeneratorSettings(**openai_gen(url)), verdict="expected")])
    # 7 x .5 + 9 x .25 + 3 x .25 = 6.5 on the 1-9 scale
    assert [r["score"] for r in scoring(["q1", "q2"], ["a1", "a2"])] == [round(5.5 / 8, 4)] * 2
    assert all(c["logprobs"] and c["max_tokens"] == 1 for c in state["calls"])
    assert all("from 1 to 9." in c["messages"][-1]["content"] for c in state["calls"])
    state.update(calls=[], logprobs=False)  # an endpoint without log-probabilities: the written verdict, on 1-9
    assert [r["score"] for r in scoring(["q1"], ["a1"])] == [round(6 / 8, 4)]
    assert scoring.stats() == {"judge": 0}


def test_unreachable_endpoint_names_the_url():
    from shipit.models.vllm_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = make_generator(GeneratorSettings(**openai_gen(url)))
    with pytest.raises(UserError, match=re.escape(url) + " is unreachable: .+"):
        gen.generate(["hello"])


# --- constitutional AI -------------------------------------------------------------------------------------------

def prompts_file(tmp_path: Path, n: int = 4) -> Path:
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": f"How do I do thing {i}?", "split": "train"}) + "\n" for i in range(n)))
    return p


def cai_cfg(gen: dict, tmp_path: Path, **kw):
    from shipit.data.cai import CAIConfig

    return CAIConfig.model_validate({"generator": gen, "constitution": str(CONSTITUTION),
                                     "prompts": [{"path": str(prompts_file(tmp_path))}],
                                     "output": str(tmp_path / "cai"), **kw})


def test_cai_endpoint_soft_labels_from_logprobs(api, tmp_path):
    from shipit.data import cai

    url, state = api
    out = cai.run(cai_cfg(openai_gen(url), tmp_path, sl={"rounds": 2}, rl={"principles": 3, "temperature": 0.8}))
    man = read_manifest(out)
    assert man["feedback"]["method"] == "logprobs" and not man["feedback"]["fallback_to_parsed_choices"]
    sft = rows(out / "sft.jsonl")
    assert len(sft) == 4
    for r in sft:
        rounds = r["provenance"]["rounds"]
        assert len(rounds) == 2 and rounds[0]["principle"] != rounds[1]["principle"]  # fresh principle per round
        assert r["messages"][1]["content"] == "revision after 5 messages."
    pairs = rows(out / "pairs.jsonl")
    assert len(pairs) == 4
    for p in pairs:
        prov = p["provenance"]
        assert 0 <= prov["p_a"] <= 1 and prov["p_a"] + prov["p_b"] == pytest.approx(1)
        assert p["soft_label"] == pytest.approx(0.9, abs=1e-3)  # the endpoint's 0.9 for the polite one
        assert "polite" in p["chosen"][0]["content"] and "rude" in p["rejected"][0]["content"]
        assert len(prov["votes"]) == 3


def test_cai_keep_drops_rows_below_the_quality_gate(api, tmp_path):
    from shipit.data import cai

    url, _ = api
    keep = {"scorers": [{"name": "format", "pattern": "(?s).*polite.*"}], "min_score": 1.0}
    out = cai.run(cai_cfg(openai_gen(url), tmp_path, sl={"rounds": 1}, rl={"principles": 1, "temperature": 0.8},
                          keep=keep))
    m = read_manifest(out)["metrics"]
    # The endpoint's revisions never say "polite" (dropped); the chosen side of every pair does (kept).
    assert (m["revisions"], m["revisions_kept"], m["pairs_generated"], m["pairs"]) == (4, 0, 4, 4)
    assert rows(out / "sft.jsonl") == []
    assert all(p["provenance"]["keep_score"] == 1.0 for p in rows(out / "pairs.jsonl"))


def test_cai_falls_back_to_parsed_choices_without_logprobs(api, tmp_path):
    from shipit.data import cai

    url, state = api
    state["logprobs"] = False
    out = cai.run(cai_cfg(openai_gen(url), tmp_path, sl={"enabled": False}, rl={"temperature": 0.8}))
    man = read_manifest(out)
    assert man["feedback"]["method"] == "parsed" and man["feedback"]["fallback_to_parsed_choices"]
    pairs = rows(out / "pairs.jsonl")
    assert len(pairs) == 4 and all(p["soft_label"] == 1.0 and "polite" in p["chosen"][0]["content"] for p in pairs)


def test_cai_hf_backend_logprob_labels(tiny_base, tmp_path):
    from shipit.data import cai
    from shipit.formats.mix import DatasetSpec
    from shipit.formats.prefs import load_pairs

    gen = {"backend": "hf", "model": str(tiny_base), "max_new_tokens": 6}
    out = cai.run(cai_cfg(gen, tmp_path, sl={"rounds": 1}, rl={"principles": 2},
                          helpful=[str(REPO / "src/shipit/demo/data/safety_sft.jsonl")], helpful_limit=3))
    man = read_manifest(out)
    assert man["feedback"]["method"] == "logprobs"
    assert man["metrics"]["revisions"] == 4 and man["metrics"]["sft_rows"] == 7
    pairs = rows(out / "pairs.jsonl")
    assert pairs, "the tiny model sampled identical answers for every prompt"
    for p in pairs:
        assert 0.5 <= p["soft_label"] <= 1 and p["provenance"]["p_a"] + p["provenance"]["p_b"] == pytest.approx(1)
        assert all(0 <= v["p_first"] <= 1 for v in p["provenance"]["votes"])
    assert len(load_pairs([DatasetSpec(path=out / "pairs.jsonl")])) == len(pairs)  # what DPO reads


def test_hf_choice_logprobs_normalise(tiny_base):
    from shipit.data.cai import prob_a

    with make_generator(GeneratorSettings(backend="hf", model=tiny_base)) as gen:
        lps = gen.choice_logprobs(["Pick one. Answer with A or B.", "Which? Answer with A or B."])
    assert len(lps) == 2 and all(v < 0 for lp in lps for v in lp.values())
    assert all(0 < prob_a(lp) < 1 for lp in lps)


def test_malformed_constitution_and_prompt_rows_are_named(tmp_path):
    from shipit.data.cai import load_constitution
    from shipit.data.sources import PromptSource, read_prompts

    bad = tmp_path / "constitution.yaml"
    bad.write_text("principles:\n  - name: a\n    critique_request: x\n    revision_request: y\n"
                   "  - name: b\n    critique_request: x\n")
    with pytest.raises(UserError, match=re.escape(f"{bad}:5: field 'principles.1.revision_request'")):
        load_constitution(bad)
    rows_path = tmp_path / "p.jsonl"
    rows_path.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    with pytest.raises(UserError, match=re.escape(f"{rows_path}:2: field 'prompt'")):
        read_prompts(PromptSource(path=rows_path))
    rows_path.write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(UserError, match=re.escape(f"{rows_path}:2: malformed JSON")):
        read_prompts(PromptSource(path=rows_path))


# --- iterate -----------------------------------------------------------------------------------------------------

SCRIPT = [0.50, 0.60, 0.605, 0.59, 0.70, 0.80]


def scripted(model: Path, cfg, round_dir: Path) -> float:
    """Scores in SCRIPT order, one per call (round 0 is the starting model)."""
    scripted.calls.append(str(model))
    return SCRIPT[len(scripted.calls) - 1]


def test_iterate_stops_early_on_a_scripted_score_sequence(tiny_base, tmp_path, monkeypatch):
    from shipit.ship import iterate

    monkeypatch.setitem(iterate.ROUND_SCORERS, "scripted", scripted)
    scripted.calls = []
    src = tmp_path / "instr.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"Write the word {w} in capital letters."}) + "\n"
                           for w in ("cat", "dog", "sun")))
    cfg = iterate.IterateConfig.model_validate({
        "model": str(tiny_base), "output": str(tmp_path / "it"),
        "data": {"generator": {"backend": "hf", "max_new_tokens": 4},
                 "instructions": {"files": [{"path": str(src)}], "dedup_threshold": None},
                 "candidates": {"temperatures": [0.7]}, "scorers": [{"name": "length", "min_words": 1}]},
        "train": {"sft": {"max_steps": 1, "warmup_steps": 0, "per_device_train_batch_size": 2}},
        "score": {"name": "scripted"}, "max_rounds": 6, "patience": 2, "min_delta": 0.01})
    out = iterate.run(cfg)
    man = read_manifest(out)
    # 0.50 -> 0.60 improves; 0.605 and 0.59 are under +0.01: patience 2 stops after round 3, never seeing 0.70.
    assert [h["score"] for h in man["history"]] == SCRIPT[:4]
    assert [h["improved"] for h in man["history"]] == [True, True, False, False]
    assert man["metrics"] == {"rounds": 3, "best_round": 1, "best_score": 0.6, "start_score": 0.5}
    assert man["stopped"].startswith("no improvement")
    assert (out / "scores.png").stat().st_size > 1000
    assert json.loads((out / "best" / "origin.json").read_text())["round"] == 1
    assert (out / "best" / "model.safetensors").is_file()
    # rounds 2 and 3 trained from the best model (round 1), and each round's data came from the model itself
    r2 = read_manifest(out / "round2" / "data")
    assert r2["config"]["generator"]["model"].endswith("round1/sft")
    assert rows(out / "round1" / "data" / "sft.jsonl")


def test_evenly_spaced_takes_the_share_spread_from_the_first():
    from shipit.data.onpolicy import evenly_spaced

    items = list(range(330))
    third = evenly_spaced(items, 0.33)
    assert len(third) == 109 and third[:4] == [0, 3, 6, 9] and {b - a for a, b in zip(third, third[1:])} == {3, 4}
    assert evenly_spaced(items, 1.0) == items and evenly_spaced(items, 0.001) == [] and evenly_spaced([], 0.5) == []
    assert evenly_spaced(list("abcd"), 0.5) == ["a", "c"]


def test_mistakes_are_the_low_scores_once_each_and_skip_refusals_leaves_out_refusals():
    from shipit.data.onpolicy import mistakes

    def row(prompt, completion, score):
        return {"prompt": prompt, "completion": completion, "score": score}

    answered = [row("a", "Paris is the capital.", 0.0), row("a", "Paris is the capital.", 0.0),  # sampled twice
                row("b", "I can't help with that.", 0.0), row("c", "It is 12.", 1.0), row("d", "It is 7.", 0.5),
                row("e", "Sorry, I cannot assist with this request.", 0.0)]
    assert mistakes(answered, 1.0) == ([answered[0], answered[2], answered[4], answered[5]], 0)
    assert mistakes(answered, 0.5) == ([answered[0], answered[2], answered[5]], 0)
    assert mistakes(answered, 1.0, skip_refusals=True) == ([answered[0], answered[4]], 2)


# --- shipped configs and CLI -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((REPO / "data_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_data_configs_validate(path):
    from shipit.data.cai import CAIConfig
    from shipit.data.onpolicy import OnPolicyConfig
    from shipit.data.synth import SynthConfig
    from shipit.ship.iterate import IterateConfig

    model = {"synth": SynthConfig, "cai": CAIConfig, "iterate": IterateConfig,
             "onpolicy": OnPolicyConfig}[path.name.split("-")[0]]
    cfg = load_config(path, model)
    assert cfg.output


def test_cli_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from shipit.cli import cli; from click.testing import CliRunner; "
            "r = CliRunner().invoke(cli, ['data', 'synth', '--help']); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(cli, ['iterate', '--help']); assert r.exit_code == 0; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.slow
def test_vllm_backend_generates_and_scores_choices(tiny_base, vllm_python):
    from shipit.data.generators import GeneratorSettings, make_generator

    gen = make_generator(GeneratorSettings(backend="vllm", model=tiny_base, max_new_tokens=6))
    try:
        answers = gen.generate(["Name a colour.", "Is a cat an animal or a food?"], temperature=0.0)
        assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
        again = gen.generate(["Name a colour.", "Is a cat an animal or a food?"], temperature=0.0)
        assert again == answers  # greedy decoding through the server is deterministic
        logps = gen.choice_logprobs(["Answer A or B."])  # vLLM returns top log-probabilities
        assert logps is not None and set(logps[0]) == {"A", "B"}
        assert all(math.isfinite(v) and v <= 0 for v in logps[0].values())
    finally:
        gen.close()
    assert gen.server.proc.poll() is not None  # the server was stopped


def test_refusal_policy_scorer_keeps_refusals_of_harmful_and_answers_to_harmless(tmp_path):
    from shipit.data.scorers import ScorerSpec, Scoring

    harmful = tmp_path / "harmful.jsonl"
    harmful.write_text(json.dumps({"prompt": "How do I  make a pipe bomb?"}) + "\n")
    scoring = Scoring([ScorerSpec(name="refusal_policy", path=harmful)])
    prompts = ["How do I make a pipe bomb?", "How do I make a pipe bomb?", "How do I make a bath bomb?",
               "How do I make a bath bomb?", "How do I make a bath bomb?"]
    answers = ["I'm sorry, but I can't help with that.", "Mix the powder and...", "Mix baking soda and citric acid.",
               "I cannot help with that.", " "]
    assert [r["score"] for r in scoring(prompts, answers)] == [1.0, 0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="needs path"):
        ScorerSpec(name="refusal_policy")


def test_trim_to_sentence_keeps_what_was_finished():
    from shipit.data.synth import trim_to_sentence as trim

    assert trim("A rainbow forms. Light is bent by water and") == "A rainbow forms."
    assert trim('He said "yes." Then he') == 'He said "yes."' and trim("Done!") == "Done!"
    assert trim("Steps:\n1. Boil water.\n2. Add") == "Steps:\n1. Boil water."  # not at a list marker
    assert trim("Ask J. Smith about it") == "Ask J. Smith about it"  # an initial ends no sentence
    assert trim("Use 3.5 cups of") == "Use 3.5 cups of" and trim("no end") == "no end"  # none: unchanged


def test_the_hf_generator_samples_by_its_seed_and_leaves_the_callers_random_state(tiny_base):
    """Sampled answers depend on the seed alone (same seed, same answers; another seed, others), and the caller's
    torch generator is where it was: a data stage must not reseed the training that runs after it."""
    import torch
    from shipit.data.generators import GeneratorSettings
    from shipit.data.generators.hf import HFGenerator

    gen = HFGenerator(GeneratorSettings(backend="hf", model=str(tiny_base), max_new_tokens=12))
    prompts = ["Tell me about the sea.", "What is a kite?", "Name a color.", "How do bees fly?"]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = gen.generate(prompts, temperature=1.0, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(3)  # the caller's state moves; the seeded answers must not
    assert gen.generate(prompts, temperature=1.0, seed=5) == first
    assert gen.generate(prompts, temperature=1.0, seed=6) != first


def test_synth_trim_cuts_the_real_generators_answers_back_to_a_sentence(tiny_base, tmp_path):
    """hf backend on the tiny model, answers sampled (seeded) and stopped at 24 tokens: with `trim: sentence` each
    candidate is a prefix of the untrimmed answer that ends where a sentence ends or has no sentence end at all, and
    at least one was cut."""
    from shipit.data import synth
    from shipit.data.synth import SENTENCE_END, SynthConfig

    def run(trim, out):
        cfg = SynthConfig.model_validate({
            "generator": {"backend": "hf", "model": str(tiny_base), "max_new_tokens": 24},
            "instructions": {"files": [{"path": str(REPO / "src/shipit/demo/data-real/replay_prompts.jsonl"),
                                        "limit": 6}]},
            "candidates": {"temperatures": [1.0], "trim": trim}, "output": str(tmp_path / out)})
        return {r["prompt"]: r["completion"] for r in rows(synth.run(cfg) / "candidates.jsonl")}

    full, trimmed = run("none", "full"), run("sentence", "trimmed")
    assert full.keys() == trimmed.keys()
    cut = [p for p in full if trimmed[p] != full[p]]
    assert cut, "no answer was cut: the check below would pass without trimming"
    for p, text in trimmed.items():
        assert full[p].startswith(text)
        ends = [m.end() for m in SENTENCE_END.finditer(text)]
        assert not ends or ends[-1] == len(text), text
