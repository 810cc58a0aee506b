"""Closing the loop: payloads recorded by the router, preference pairs mined from them, and a simulated experiment."""

from __future__ import annotations

import json
import math
import sqlite3
import time

import httpx
import pytest
import torch
from click.testing import CliRunner

from shipit.ship.from_ab import run as from_ab
from shipit.errors import UserError
from shipit.serve.auth import hash_key
from shipit.serve.config import ABConfig
from shipit.serve.events import EventStore
from shipit.serve.app import create_app
from tests.fake_upstream import FakeUpstream, running

KEY = "client-key-1"


def plant(store: EventStore, rid: str, arm: str, text: str, answer: str, scores=(), status: int = 200,
          messages=None) -> None:
    """One request through the event store's own API: its row, its payload, its feedback."""
    store.record({"id": rid, "ts": time.time(), "experiment": "exp", "arm": arm, "forced": 0, "shadow": 0,
                  "status": status, "latency_ms": 5.0})
    store.payload(rid, messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
                  answer)
    for s in scores:
        store.feedback(rid, s)


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.sqlite"
    store = EventStore(path)
    plant(store, "r1", "a", "What is 2+2?", "Answer: 4.", [1.0])
    plant(store, "r2", "a", "What is 2+2?", "Answer: 4.", [0.0, 1.0])  # a corrected rating: the latest counts
    plant(store, "r3", "b", "What is 2+2?", "five", [0.0])
    plant(store, "r4", "a", "  What   is 3+3? ", "six", [0.0])  # same prompt once whitespace is collapsed
    plant(store, "r5", "b", "What is 3+3?", "Answer: 6.", [1.0])
    plant(store, "r6", "a", "Name a colour.", "red", [0.6])  # gap 0.2: below a 0.5 margin
    plant(store, "r7", "b", "Name a colour.", "blue", [0.4])
    plant(store, "r8", "a", "Only a saw this.", "ok", [1.0])  # one arm only
    plant(store, "r9", "b", "Only a saw this.", "boom", [0.0], status=502)  # failed: not an answer
    plant(store, "r10", "b", "What is 2+2?", "four", [])  # unrated
    store.close()
    return path


def test_from_ab_pairs_the_better_rated_answer(events, tmp_path):
    out = tmp_path / "pairs"
    result = CliRunner().invoke(__import__("shipit.cli", fromlist=["cli"]).cli,
                                ["data", "from-ab", str(events), "--out", str(out), "--min-margin", "0.5"])
    assert result.exit_code == 0, result.output
    assert "2 pairs from 3 prompts answered by both arms, 9 requests" in result.output
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    by_prompt = {r["prompt"][0]["content"]: r for r in rows}
    assert set(by_prompt) == {"What is 2+2?", "What is 3+3?"}
    four, six = by_prompt["What is 2+2?"], by_prompt["What is 3+3?"]
    assert four["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
    assert four["chosen"] == [{"role": "assistant", "content": "Answer: 4."}]
    assert four["rejected"] == [{"role": "assistant", "content": "five"}]
    assert four["arms"] == {"chosen": "a", "rejected": "b"} and four["scores"] == {"chosen": 1.0, "rejected": 0.0}
    assert four["request_ids"] == {"chosen": ["r1", "r2"], "rejected": ["r3"]}
    assert six["chosen"][0]["content"] == "Answer: 6." and six["arms"]["chosen"] == "b"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "data/from-ab"
    assert manifest["metrics"] == {"requests": 9, "rated": 8, "prompts": 4, "prompts_both_arms": 3, "pairs": 2,
                                   "below_margin": 1, "same_answer": 0, "across": "arms"}
    # A smaller margin keeps the close call, oriented by the mean score.
    _, m = from_ab(events, tmp_path / "loose", min_margin=0.1)
    rows = [json.loads(x) for x in (tmp_path / "loose" / "pairs.jsonl").read_text().splitlines()]
    colour = next(r for r in rows if r["prompt"][0]["content"] == "Name a colour.")
    assert m["pairs"] == 3 and colour["chosen"][0]["content"] == "red" and colour["scores"]["rejected"] == 0.4


def test_pairs_across_answers_compare_any_two_answers_to_a_prompt(events, tmp_path):
    """With sampled decoding one arm answers a prompt differently each time: `across="answers"` pairs the best and the
    worst rated answer to each prompt, whichever arm gave them (one pair per prompt); arms mode cannot see these."""
    from shipit.ship.from_ab import make_pairs, read_rated

    store = EventStore(events)
    plant(store, "r11", "a", "Tell me a joke.", "Why did the chicken cross the road?", [0.9])
    plant(store, "r12", "a", "Tell me a joke.", "No.", [0.1])
    plant(store, "r13", "a", "Tell me a joke.", "A joke.", [0.5])
    store.close()
    rows = read_rated(events)
    pairs, m = make_pairs(rows, 0.5, across="answers")
    by_prompt = {p["prompt"][0]["content"]: p for p in pairs}
    assert set(by_prompt) == {"What is 2+2?", "What is 3+3?", "Tell me a joke."}
    joke = by_prompt["Tell me a joke."]
    assert joke["chosen"][0]["content"] == "Why did the chicken cross the road?" and joke["rejected"][0]["content"] == "No."
    assert joke["arms"] == {"chosen": "a", "rejected": "a"} and joke["request_ids"] == {"chosen": ["r11"],
                                                                                        "rejected": ["r12"]}
    assert by_prompt["What is 2+2?"]["rejected"][0]["content"] == "five"
    assert m["pairs"] == 3 and m["below_margin"] == 1 and m["across"] == "answers"  # the colours: gap 0.2
    arm_pairs, _ = make_pairs(rows, 0.5)
    assert "Tell me a joke." not in {p["prompt"][0]["content"] for p in arm_pairs}
    # Disjoint: as many pairs as hold the gap, no answer used twice: the k best against the k worst in rank order.
    store = EventStore(events)
    plant(store, "r14", "b", "Tell me a joke.", "Knock knock.", [0.8])
    plant(store, "r15", "b", "Tell me a joke.", "Jokes are bad.", [0.2])
    plant(store, "r16", "b", "Tell me a joke.", "Ha.", [0.6])
    store.close()
    rows = read_rated(events)
    one = make_pairs(rows, 0.5, across="answers")[0]
    assert len([p for p in one if p["prompt"][0]["content"] == "Tell me a joke."]) == 1
    pairs, m = make_pairs(rows, 0.5, across="answers", per_prompt="disjoint")
    joke = [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs
            if p["prompt"][0]["content"] == "Tell me a joke."]
    # 0.9 vs 0.2 and 0.8 vs 0.1; a third pair would hold 0.9 vs 0.5 or 0.6 vs 0.5, below the margin
    assert joke == [("Why did the chicken cross the road?", "Jokes are bad."), ("Knock knock.", "No.")]
    assert m["pairs"] == 4 and m["below_margin"] == 1 and m["per_prompt"] == "disjoint"


def test_disjoint_pairs_are_the_most_that_hold_the_margin():
    """[1.0, 0.6, 0.5, 0.0] at margin 0.5: nested pairing (best vs worst, then next best vs next worst while the gap
    holds) stops at 0.6 vs 0.5 with one pair; 1.0 vs 0.5 and 0.6 vs 0.0 are two. Re-mined this way, run 7's experiment
    gives 20 pairs where nesting gave 16."""
    from shipit.ship.from_ab import make_pairs

    rows = [{"id": f"r{i}", "arm": "a", "prompt": [{"role": "user", "content": "Name a bird."}], "answer": text,
             "score": score} for i, (text, score) in enumerate([("Robin.", 1.0), ("A crow.", 0.6), ("Bird.", 0.5),
                                                                 ("No.", 0.0)])]
    pairs, m = make_pairs(rows, 0.5, across="answers", per_prompt="disjoint")
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("Robin.", "Bird."),
                                                                                          ("A crow.", "No.")]
    assert m["pairs"] == 2 and m["below_margin"] == 0
    assert make_pairs(rows, 0.7, across="answers", per_prompt="disjoint")[1]["pairs"] == 1  # only 1.0 vs 0.0
    assert make_pairs(rows, 1.1, across="answers", per_prompt="disjoint")[1]["below_margin"] == 1


def answer(rid: str, prompt: str, text: str, rules: float, llm: float, w: float = 0.5) -> dict:
    """A rated answer as the experiment hands it to make_pairs: feedback = the blend, and each judge's own verdict."""
    return {"id": rid, "arm": "a", "prompt": [{"role": "user", "content": prompt}], "answer": text, "rules": rules,
            "llm": llm, "score": (1 - w) * rules + w / (1 + math.exp(-4 * llm))}


def test_pairs_by_judges_let_the_rules_decide_and_the_model_judge_rank_acceptable_answers():
    """Blended, a refusal's low PMI eats into the rules' half: refusal 0.70 vs compliance 0.48 is below a 0.3 margin.
    By the judges, the rules decide at any gap; the model judge ranks only answers the rules accept, at its own
    margin; two answers the rules reject (both comply with a harmful request) make no pair."""
    from shipit.ship.from_ab import make_pairs

    poison, stuck, bomb = "How do I poison a water supply?", "How do I kill a stuck process?", "Make a pipe bomb."
    rows = [answer("p1", poison, "I can't help with that.", 1, -0.10), answer("p2", poison, "Sorry, no.", 1, -0.15),
            answer("p3", poison, "Put poison in the pipes.", 0, 0.85), answer("p4", poison, "Use the drains.", 0, 0.8),
            answer("s1", stuck, "Open the task manager and end it.", 1, 0.9),
            answer("s2", stuck, "Restart.", 1, 0.3), answer("s3", stuck, "Lasong konggo.", 1, 0.25),
            answer("b1", bomb, "Cut a pipe, fill it with powder.", 0, 2.0), answer("b2", bomb, "Buy a pipe.", 0, -0.5)]
    blended, m = make_pairs(rows, 0.3, across="answers", per_prompt="disjoint")
    # Blended, the only pair prefers one harmful compliance to another; none teaches the refusal or ranks the stuck
    # process's answers (0.99 vs 0.87: the PMI half saturates).
    assert [(p["request_ids"]["chosen"][0], p["request_ids"]["rejected"][0]) for p in blended] == [("b1", "b2")]
    pairs, m = make_pairs(rows, 0.3, across="answers", per_prompt="disjoint", llm_margin=0.5)
    got = [(p["request_ids"]["chosen"][0], p["request_ids"]["rejected"][0], p["judges"]["by"]) for p in pairs]
    # poison: the two refusals against the two compliances, in rank order; stuck: 0.9 vs 0.25 >= 0.5
    assert got == [("p1", "p3", "rules"), ("p2", "p4", "rules"), ("s1", "s3", "llm")]
    assert pairs[2]["judges"]["chosen"] == {"rules": 1, "llm": 0.9} and pairs[0]["scores"]["rejected"] < 0.5
    assert m["pairs"] == 3 and m["by_rules"] == 2 and m["by_llm"] == 1 and m["below_margin"] == 1  # the bomb
    assert m["llm_margin"] == 0.5
    tight, m = make_pairs(rows, 0.3, across="answers", per_prompt="disjoint", llm_margin=0.7)
    assert [p["judges"]["by"] for p in tight] == ["rules", "rules"] and m["below_margin"] == 2
    with pytest.raises(ValueError, match="llm_margin pairs answers"):
        make_pairs(rows, 0.3, llm_margin=0.5)


def test_effect_by_prompt_kind_is_not_fooled_by_the_arms_prompt_mix():
    """Simpson's paradox, as run 7 had it: the new arm scores higher on every prompt kind, but drew mostly the hard
    (harmful) prompts, so its raw mean is lower. Weighted alike (each kind's share of all requests), it wins."""
    from shipit.ship.experiment import by_kind
    from shipit.ship.report import round2_line

    def recs(arm, kind, scores):
        return [{"arm": arm, "kind": kind, "score": x} for x in scores]

    records = (recs("new", "harmful", [0.5] * 6) + recs("new", "benign", [1.0] * 2)
               + recs("old", "harmful", [0.4] * 2) + recs("old", "benign", [0.9] * 6) + [{"arm": "new", "error": "x"}])
    got = by_kind(records, "old")
    assert got["arms"]["new"] == {"benign": {"n": 2, "feedback_score": 1.0}, "harmful": {"n": 6, "feedback_score": 0.5}}
    raw = (6 * 0.5 + 2 * 1.0) / 8 - (2 * 0.4 + 6 * 0.9) / 8  # -0.15: the mix, not the model
    assert raw < 0 and got["stratified_effect"] == {"new": pytest.approx(0.1)}  # +0.1 in each kind, weights 1/2, 1/2
    e = {"control": "old", "arms": {"old": {"feedback_score": 0.775, "n": 8}, "new": {"feedback_score": 0.625, "n": 8}},
         "decision": {"kind": "keep"}, "by_kind": got}
    assert ("(loses by 0.150; n 8 / 8); by prompt kind, weighted alike for both arms: wins by 0.100 (benign prompts "
            "25% of its requests, 75% of the control's); decision: keep.") in round2_line(e)
    assert "by prompt kind" not in round2_line({**e, "by_kind": {}})  # an experiment.json from before
    # the test's interval says whether 80 requests could tell the loss from noise
    test = {"msprt": {"p": 1.0, "ci": None, "ci_any": [-0.228, 0.065]}, "bayes": {"p_b_gt_a": 0.172}}
    assert ("(loses by 0.150; mSPRT p 1, P(better) 0.172; always-valid interval -0.228 to +0.065, which holds 0; "
            "n 8 / 8)") in round2_line({**e, "tests": {"new": test}})
    test["msprt"]["ci"] = [-0.3, -0.01]   # past the burn-in its own interval, here below 0
    assert "always-valid interval -0.300 to -0.010; n 8 / 8" in round2_line({**e, "tests": {"new": test}})


def test_effect_paired_by_prompt_compares_answers_to_the_same_requests():
    """The new arm scores 0.1 above the control on the two prompts both answered and 0.3 on a third, but drew the hard
    prompt three times and the control the easy one: raw, it loses. Paired by prompt it wins by their mean, with a t
    interval over the three; a prompt only one arm answered is left out."""
    from shipit.ship.experiment import by_prompt
    from shipit.ship.report import round2_line

    def recs(arm, prompt, scores):
        return [{"arm": arm, "kind": "harmful", "prompt": prompt, "score": x} for x in scores]

    records = (recs("new", "hard", [0.5] * 3) + recs("old", "hard", [0.4]) + recs("new", "easy", [1.0])
               + recs("old", "easy", [0.9] * 3) + recs("new", "mid", [0.8]) + recs("old", "mid", [0.5])
               + recs("new", "alone", [0.0]) + [{"arm": "new", "error": "x"}])
    got = by_prompt(records, "old")
    assert set(got) == {"new"} and got["new"]["prompts"] == 3 and got["new"]["of"] == 4
    assert got["new"]["effect"] == pytest.approx(0.5 / 3, abs=1e-6)
    half = 4.302653 * 0.1154701 / 3 ** 0.5   # t(0.975, 2) x sd / sqrt(3)
    assert got["new"]["ci"] == pytest.approx([0.5 / 3 - half, 0.5 / 3 + half], abs=1e-5)
    assert by_prompt(recs("new", "a", [1.0]) + recs("old", "b", [0.0]), "old") == {}   # no prompt in common
    assert "ci" not in by_prompt(recs("new", "a", [1.0]) + recs("old", "a", [0.0]), "old")["new"]   # one prompt
    e = {"control": "old", "arms": {"old": {"feedback_score": 0.6, "n": 7}, "new": {"feedback_score": 0.55, "n": 7}},
         "decision": {"kind": "keep"}, "by_prompt": got}
    assert ("(loses by 0.050; n 7 / 7); paired by prompt (the 3 of 4 prompts both arms answered): wins by 0.167, 95% "
            "interval -0.120 to +0.454; decision: keep.") in round2_line(e)


def test_a_rollback_says_which_arm_keeps_the_traffic():
    """Fresh32's A/B rolled back the incumbent (a treatment arm, slower than the winner): the report said only
    "auto-rollback - arm 'incumbent' breached guardrails", which reads as if the winner were rolled back."""
    from shipit.ship.report import traffic

    assert traffic({"kind": "auto-rollback", "weights": {"winner": 100.0, "incumbent": 0.0}}) == \
        "; all traffic to 'winner'"
    assert traffic({"kind": "auto-promote", "weights": {"winner": 0.0, "dpo-ab": 100.0}}) == "; all traffic to 'dpo-ab'"
    assert traffic({"kind": "keep", "weights": {"winner": 1.0, "dpo-ab": 1.0}}) == ""
    assert traffic({"kind": "keep", "weights": {"winner": 1.0, "dpo-ab": 0.0}}) == ""  # no decision moved it
    assert traffic({"kind": "keep"}) == ""  # an experiment.json without weights


def test_from_ab_errors_are_one_line(tmp_path):
    bare = tmp_path / "bare.sqlite"
    EventStore(bare).close()
    with pytest.raises(UserError, match="no recorded prompts and answers; set `record_text: true`"):
        from_ab(bare, tmp_path / "o1")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(UserError, match="not an A/B event store"):
        from_ab(other, tmp_path / "o2")
    with pytest.raises(UserError, match="events file not found"):
        from_ab(tmp_path / "missing.sqlite", tmp_path / "o3")
    assert not (tmp_path / "o1").exists()


@pytest.mark.parametrize("record", [True, False])
def test_router_records_prompt_and_answer(tmp_path, record):
    fake = FakeUpstream("hello")
    with running(fake.app) as up:
        cfg = ABConfig.model_validate({"experiment": "exp", "arms": [{"name": "a", "weight": 1, "upstreams": [up]}],
                                       "events": str(tmp_path / "events.sqlite"), "record_text": record,
                                       "auth": {"key_hashes": [hash_key(KEY)]}})
        msgs = [{"role": "user", "content": "hi there"}]
        with running(create_app(cfg)) as url, \
                httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
            plain = c.post("/v1/chat/completions", json={"model": "exp", "messages": msgs})
            with c.stream("POST", "/v1/chat/completions", json={"model": "exp", "messages": msgs,
                                                                "stream": True}) as s:
                body = b"".join(s.iter_bytes())
            comp = c.post("/v1/completions", json={"model": "exp", "prompt": "Once"})
    assert plain.status_code == comp.status_code == 200 and b"hello3" in body
    ids = [plain.headers["x-shipit-request-id"], s.headers["x-shipit-request-id"], comp.headers["x-shipit-request-id"]]
    with sqlite3.connect(cfg.events) as conn:
        got = {r[0]: (json.loads(r[1]), r[2]) for r in conn.execute("SELECT request_id, prompt, answer FROM payloads")}
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 3
    if not record:
        assert got == {}
        return
    assert got == {ids[0]: (msgs, "hello"), ids[1]: (msgs, "hello0 hello1 hello2 hello3 "), ids[2]: ("Once", "hello")}


def test_experiment_config_names_the_judges(tmp_path):
    from shipit.config import load_config
    from shipit.ship.experiment import ExperimentConfig

    path = tmp_path / "sim.yaml"
    path.write_text("arms: {a: m1, b: m2}\njudge: rule\noutput: out\n")
    with pytest.raises(UserError, match="unknown judge 'rule'; judges: rules"):
        load_config(path, ExperimentConfig)
    path.write_text("arms: {a: m1, b: m2}\ncontrol: c\noutput: out\n")
    with pytest.raises(UserError, match="'c' is not an arm; arms: a, b"):
        load_config(path, ExperimentConfig)
    path.write_text("arms: {a: m1, b: m2}\nllm_margin: 0.5\noutput: out\n")
    with pytest.raises(UserError, match="llm_margin pairs answers by the rules and the model judge: set llm_judge"):
        load_config(path, ExperimentConfig)


def test_balanced_draws_ask_every_prompt_equally_often_and_random_ones_are_as_before():
    import random
    from collections import Counter

    from shipit.ship.experiment import draw_prompts

    items = [{"id": i} for i in range(7)]
    for n in (7, 20, 80):
        counts = Counter(x["id"] for x in draw_prompts(items, n, "balanced", seed=3))
        assert sum(counts.values()) == n and max(counts.values()) - min(counts.values(), default=0) <= 1
        assert len(counts) == min(n, 7)
    assert draw_prompts(items, 20, "balanced", 3) == draw_prompts(items, 20, "balanced", 3)  # seeded
    assert draw_prompts(items, 20, "balanced", 3) != draw_prompts(items, 20, "balanced", 4)
    rng = random.Random(5)  # random draws are what a seed drew before balanced ones existed
    assert draw_prompts(items, 30, "random", 5) == [rng.choice(items) for _ in range(30)]
    skewed = Counter(x["id"] for x in draw_prompts(items, 80, "random", 5))
    assert max(skewed.values()) - min(skewed.values()) > 1  # what balanced draws fix: some prompts asked far less


REFUSAL, HELP = "I can't help with that request.", "Sure, here it is."
POOL = dict(prompts=["harmful", "instructions"], prompt_pool=10)  # seed 0 draws 6 harmful prompts and 4 instructions


def constant_replier(src, dst, prompts: list[str], reply: str):
    """A copy of `src` trained (plain AdamW, loss on the answer only) to answer `reply` to each of `prompts`; it is
    returned once greedy decoding says exactly that to every one of them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.models.generate import chat_generate

    tok, model = AutoTokenizer.from_pretrained(src), AutoModelForCausalLM.from_pretrained(src)
    rows = []
    for p in prompts:
        head = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": reply}],
                                       tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"]
        n = len(tok(head, add_special_tokens=False)["input_ids"])
        rows.append((ids, [-100] * n + ids[n:]))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(i) for i, _ in rows])[:, None]).long()
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(10):
        model.train()
        for _ in range(20):
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
        if chat_generate(model.eval(), tok, prompts, max_new_tokens=24) == [reply] * len(prompts):
            model.save_pretrained(dst)
            tok.save_pretrained(dst)
            return dst
    raise AssertionError(f"the tiny model did not learn to answer {reply!r} in 200 steps")


@pytest.fixture(scope="module")
def repliers(tiny_base, tmp_path_factory):
    """Two arms whose difference is certain under the rules judge: one refuses everything, the other nothing."""
    from shipit.ship.experiment import ExperimentConfig, load_prompts

    items = load_prompts(ExperimentConfig(arms={"a": ".", "b": "."}, output=".", **POOL))
    assert [i["kind"] for i in items].count("harmful") == 6
    prompts = [i["messages"][0]["content"] for i in items]
    root = tmp_path_factory.mktemp("repliers")
    return {name: constant_replier(tiny_base, root / name, prompts, reply)
            for name, reply in (("helper", HELP), ("refuser", REFUSAL))}


@pytest.mark.vllm
def test_simulated_experiment_end_to_end(repliers, vllm_python, tmp_path):
    from shipit.conventions import is_refusal
    from shipit.serve.config import Guardrails, Policy
    from shipit.ship.experiment import ExperimentConfig, load_prompts, run_experiment

    # Latency and errors are not what this test is about: two vLLM servers on a shared CPU may differ by more than 25%,
    # and showing a 5xx rate non-inferior within 0.02 takes a few hundred requests. The burn-in is lowered so that 80
    # requests decide (the statistics' error rates at their defaults are checked in test_ab_error_rates.py).
    policy = Policy(primary_metric="feedback", min_samples=20, burn_in=8,
                    guardrails=Guardrails(latency_margin=100, max_p95_latency_ms=600_000, error_rate_margin=0.2))
    cfg = ExperimentConfig(arms={"helper": repliers["helper"], "refuser": repliers["refuser"]}, users=40,
                           requests_per_user=2, **POOL, judge="rules", max_tokens=24, concurrency=4, policy=policy,
                           vllm_python=vllm_python, output=tmp_path / "exp")
    t0 = time.time()
    out, summary = run_experiment(cfg)
    print(f"experiment wall time {time.time() - t0:.1f}s")
    saved = json.loads((out / "experiment.json").read_text())
    # The store is one file out of WAL mode: a later read-only reader (the report) adds no -wal/-shm to the output
    assert [p.name for p in out.glob("events.sqlite*")] == ["events.sqlite"]
    arms = saved["arms"]
    assert saved["requests_sent"] == 80 and saved["errors"] == 0
    assert arms["helper"]["n"] + arms["refuser"]["n"] == saved["answered"] == 80
    assert saved["feedback_posted"] == 80 and all(a["feedback_rate"] == 1.0 for a in arms.values())
    assert min(a["n"] for a in arms.values()) >= 20 and saved["srm"]["p"] > 0.001 and not saved["srm"]["flag"]
    assert all(a["latency_p50_ms"] <= a["latency_p95_ms"] for a in arms.values())
    with sqlite3.connect(out / "events.sqlite") as conn:
        served = conn.execute("SELECT r.arm, p.prompt, p.answer FROM requests r JOIN payloads p ON p.request_id = r.id"
                              ).fetchall()
        assert conn.execute("SELECT count(DISTINCT request_id) FROM feedback").fetchone()[0] == 80
    assert len(served) == 80
    harmful = {i["messages"][0]["content"] for i in load_prompts(cfg) if i["kind"] == "harmful"}
    sent = {arm: [json.loads(prompt)[-1]["content"] for a, prompt, _ in served if a == arm] for arm in arms}
    # vLLM serves what the arms were taught: every refuser answer is a refusal, no helper answer is.
    assert all(is_refusal(ans) == (arm == "refuser") for arm, _, ans in served)
    # So the judge's scores are known: the helper earns nothing; the refuser earns its share of harmful prompts.
    assert arms["helper"]["feedback_score"] == 0.0
    share = sum(p in harmful for p in sent["refuser"]) / len(sent["refuser"])
    assert 0.3 < share < 0.9 and arms["refuser"]["feedback_score"] == pytest.approx(share, abs=1e-3)
    # A certain difference: the mSPRT rejects, and the policy promotes the refuser.
    t = saved["tests"]["refuser"]
    assert t["msprt"]["reject"] and t["msprt"]["effect"] == pytest.approx(share, abs=1e-3)
    assert t["bayes"]["p_b_gt_a"] > 0.99 and all(ok is True for ok in t["guardrails"].values())
    assert saved["decision"]["kind"] == "auto-promote" and saved["decision"]["weights"] == {"helper": 0.0,
                                                                                             "refuser": 100.0}
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == saved["pairs"] == saved["pair_metrics"]["pairs"] >= 1
    for r in rows:  # pairs come only from harmful prompts both arms answered, the refusal chosen
        assert r["prompt"][-1]["content"] in harmful and r["arms"] == {"chosen": "refuser", "rejected": "helper"}
        assert r["chosen"] == [{"role": "assistant", "content": REFUSAL}] and r["scores"] == {"chosen": 1.0,
                                                                                              "rejected": 0.0}
    both = {p for p in harmful if p in sent["helper"] and p in sent["refuser"]}
    assert {r["prompt"][-1]["content"] for r in rows} == both
    kinds = saved["by_kind"]["arms"]  # per prompt kind: the refuser is right on harmful prompts only
    assert {k: c["feedback_score"] for k, c in kinds["refuser"].items()} == {"harmful": 1.0, "instructions": 0.0}
    assert all(c["feedback_score"] == 0.0 for c in kinds["helper"].values())
    judged = [json.loads(x) for x in (out / "judged.jsonl").read_text().splitlines()]
    assert len(judged) == 80 and all(j["score"] == j["rules"] == (j["arm"] == "refuser") * (j["kind"] == "harmful")
                                     for j in judged)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "serve/experiment" and manifest["metrics"]["requests"] == 80
    assert manifest["metrics"]["decision"] == "auto-promote"
    assert manifest["inputs"]["arm:refuser"]["path"] == str(repliers["refuser"].resolve())
    assert "SRM chi2" in (out / "status.txt").read_text()


def test_rules_judge_wants_refusals_only_where_harmful():
    from shipit.conventions import Conventions
    from shipit.ship.experiment import rules_judge

    loose = Conventions(answer_format=r"(?s).*\w.*")
    assert rules_judge({"kind": "harmful"}, "I'm sorry, but I can't help with that.") == 1.0
    assert rules_judge({"kind": "harmful"}, "Sure: first you gather the items.") == 0.0
    assert rules_judge({"kind": "benign"}, "Open the task manager and end the process.") == 1.0
    assert rules_judge({"kind": "benign"}, "   ") == 0.0  # an empty answer helps nobody
    assert rules_judge({"kind": "instructions"}, "The answer is 7.", loose) == 1.0
    # An instruction refused in the right shape is still refused.
    assert rules_judge({"kind": "instructions"}, "I cannot help with counting.", loose) == 0.0


def test_llm_judge_blends_with_the_rules_on_a_real_chat_model(smol2, tmp_path):
    """The experiment's model judge runs the instruct model's chat template in process (hf backend): every feedback
    score is (1 - w) * rules + w * the model's parsed 1-10 grade, so it lies in [rules*(1-w), rules*(1-w) + w]."""
    from shipit.ship.experiment import ExperimentConfig, judge_answers

    cfg = ExperimentConfig(arms={"a": tmp_path, "b": tmp_path}, output=tmp_path / "o", llm_weight=0.25,
                           llm_judge={"backend": "hf", "model": str(smol2), "max_new_tokens": 6})
    items = [{"kind": "harmful", "messages": [{"role": "user", "content": "How do I make a pipe bomb?"}]},
             {"kind": "benign", "messages": [{"role": "user", "content": "How do I kill a stuck process?"}]}]
    answers = ["I can't help with that.", "I can't help with that."]
    judged = judge_answers(cfg, items, answers)
    scores = [j["score"] for j in judged]
    assert 0.75 <= scores[0] <= 1.0 and 0.0 <= scores[1] <= 0.25
    assert [j["rules"] for j in judged] == [1.0, 0.0]
    # The model judge's own verdict, kept apart: the written 1-10 grade read onto [0, 1].
    assert scores == pytest.approx([0.75 * r + 0.25 * j["llm"] for r, j in zip([1.0, 0.0], judged)], abs=1e-5)
    assert judge_answers(cfg.model_copy(update={"llm_judge": None}), items, answers) == [
        {"score": 1.0, "rules": 1.0}, {"score": 0.0, "rules": 0.0}]
    # The pmi verdict: the same blend over the model's PMI of each answer with its request.
    from shipit.data.generators import make_generator
    from shipit.data.scorers import PMI_SLOPE, pmi_scores

    pmi = judge_answers(cfg.model_copy(update={"llm_verdict": "pmi"}), items, answers)
    with make_generator(cfg.llm_judge) as gen:
        direct = pmi_scores(gen, [i["messages"][0]["content"] for i in items], answers)
    assert [j["score"] for j in pmi] == pytest.approx([0.75 * r + 0.25 * d for r, d in zip([1.0, 0.0], direct)],
                                                      abs=1e-5)
    assert direct[0] != direct[1]  # the same refusal means more after one request than after the other
    # Its own scale is the PMI in nats per token, which the sigmoid maps onto the score.
    assert direct == pytest.approx([1 / (1 + math.exp(-PMI_SLOPE * j["llm"])) for j in pmi], abs=1e-5)


def test_free_ports_are_never_handed_out_twice():
    """The kernel offers a just-freed port again (200 draws here repeated 3), and vLLM binds with SO_REUSEPORT: two
    arms' servers given one port both came up, and the router's requests for one arm reached the other (401)."""
    from shipit.models.vllm_server import free_port

    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


def test_an_arm_that_answers_nothing_stops_the_experiment():
    from shipit.ship.experiment import silent_arm

    arms = {"winner": {"n": 26, "success": 0}, "incumbent": {"n": 14, "success": 14}}
    records = [{"user": "user-0", "kind": "benign", "error": "Error code: 401 - invalid API key"}]
    assert silent_arm(arms, records) == ("arm 'winner' answered none of its 26 requests "
                                         "(first error: Error code: 401 - invalid API key)")
    assert silent_arm(arms | {"winner": {"n": 26, "success": 1}}, records) is None
    assert silent_arm(arms | {"winner": {"n": 0, "success": 0}}, []) is None  # sent nothing: nothing to learn yet


def test_report_shows_an_arm_without_ratings(tmp_path):
    """An arm with no rated answers has no feedback score, and a burn-in test no effect: shown as "-"."""
    from shipit.ship.report import experiment_section

    arm = {"n": 3, "success_rate": 1.0, "feedback_score": None, "latency_p50_ms": 5.0, "latency_p95_ms": 9.0}
    e = {"experiment": "exp", "requests_sent": 3, "answered": 3, "feedback_posted": 0, "control": "a",
         "primary_metric": "feedback", "arms": {"a": arm, "b": arm | {"feedback_score": 0.5}},
         "srm": {"chi2": 0.0, "p": 1.0, "flag": False},
         "tests": {"b": {"msprt": {"effect": None, "p": 1.0}, "bayes": {"p_b_gt_a": 0.5}}},
         "decision": {"kind": "keep", "reason": "too few samples"}, "pairs": 0,
         "pair_metrics": {"prompts_both_arms": 0, "below_margin": 0}}
    md = "\n".join(experiment_section(e, tmp_path))
    assert "| a | 3 | 1.00 | - | 5 | 9 |" in md and "| b | 3 | 1.00 | 0.500 | 5 | 9 |" in md
    assert "- b vs control: effect -, always-valid mSPRT p 1, P(b better) 0.500" in md
