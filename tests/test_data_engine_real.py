"""The data engine on a real instruct model (SmolLM2: BPE tokenizer without a pad token, ChatML template, <|im_end|>
as end of turn) as generator, critic and judge, through the `hf` backend in process and the `vllm` backend."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from shipit.data.generators import GeneratorSettings, make_generator
from shipit.registry import read_manifest

REPO = Path(__file__).resolve().parent.parent
CONSTITUTION = REPO / "src/shipit/demo/data/constitution.yaml"
# Different lengths, so every batch is padded (the tokenizer has no pad token of its own).
PROMPTS = ["What is the capital of France?", "How do I boil an egg so that the yolk stays soft in the middle?"]
SPECIAL = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def prompts_file(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in PROMPTS))
    return p


def run_cai(gen: dict, tmp_path: Path) -> Path:
    from shipit.data import cai

    cfg = cai.CAIConfig.model_validate({
        "generator": gen, "constitution": str(CONSTITUTION), "prompts": [{"path": str(prompts_file(tmp_path))}],
        "sl": {"rounds": 1}, "rl": {"principles": 1, "temperature": 1.0}, "output": str(tmp_path / "cai")})
    return cai.run(cfg)


def run_synth(gen: dict, judge: dict, tmp_path: Path) -> Path:
    from shipit.data import synth

    cfg = synth.SynthConfig.model_validate({
        "generator": gen, "instructions": {"files": [{"path": str(prompts_file(tmp_path))}]},
        "candidates": {"temperatures": [0.0, 1.0]},
        "scorers": [{"name": "judge", "judge": judge}], "filter": {"pair_margin": 0.0}, "output": str(tmp_path / "s")})
    return synth.run(cfg)


def replay_critique_revise(gen, sft: list[dict]) -> tuple[list[str], list[str]]:
    """The critiques and revisions the critic gives, greedily, for the conversations cai recorded: what cai wrote
    must be this model's text for exactly those conversations (same batch, so the same padding)."""
    from shipit.data.cai import load_constitution

    principles = {p.name: p for p in load_constitution(CONSTITUTION)}
    asks = [[{"role": "user", "content": r["messages"][0]["content"]},
             {"role": "assistant", "content": r["provenance"]["initial"]},
             {"role": "user", "content": principles[r["provenance"]["rounds"][0]["principle"]].critique_request}]
            for r in sft]
    critiques = gen.generate(asks, temperature=0.0)
    revisions = gen.generate([a + [{"role": "assistant", "content": c},
                                   {"role": "user", "content": principles[r["provenance"]["rounds"][0]["principle"]]
                                    .revision_request}] for a, c, r in zip(asks, critiques, sft)], temperature=0.0)
    return critiques, revisions


def check_cai(out: Path, gen) -> None:
    man = read_manifest(out)
    assert man["metrics"]["revisions"] == len(PROMPTS) and man["feedback"]["method"] == "logprobs"
    sft = rows(out / "sft.jsonl")
    assert [r["messages"][0]["content"] for r in sft] == PROMPTS
    texts = [r["provenance"]["initial"] for r in sft] + [x for r in sft for h in r["provenance"]["rounds"]
                                                         for x in (h["critique"], h["revision"])]
    assert all(t.strip() for t in texts), texts  # the model said something at every step
    assert not any(s in t for t in texts for s in SPECIAL), texts  # the end of turn is a stop, never text
    critiques, revisions = replay_critique_revise(gen, sft)
    assert [r["provenance"]["rounds"][0]["critique"] for r in sft] == critiques
    assert [r["messages"][1]["content"] for r in sft] == [r["provenance"]["rounds"][0]["revision"] for r in sft] \
        == revisions
    for p in rows(out / "pairs.jsonl"):
        assert 0.5 <= p["soft_label"] <= 1 and p["chosen"][0]["content"] != p["rejected"][0]["content"]


def check_judged_synth(out: Path) -> list[float]:
    """Every candidate carries the judge's score, parsed from a verdict (none unparsed) on the 1-10 grid."""
    man = read_manifest(out)
    assert man["judge_unparsed"] == {"judge": 0}
    cands = rows(out / "candidates.jsonl")
    assert len(cands) == 2 * len(PROMPTS) and all(c["completion"].strip() for c in cands)
    scores = [c["provenance"]["scores"]["judge"] for c in cands]
    assert all(0 <= s <= 1 and abs(s * 9 - round(s * 9)) < 1e-3 for s in scores), scores
    assert len(rows(out / "sft.jsonl")) == len(PROMPTS)
    return scores


@pytest.mark.slow
def test_cai_and_judged_synth_on_the_cut_instruct_model_in_process(smol2, smollm2, tmp_path):
    gen = {"backend": "hf", "model": str(smol2), "max_new_tokens": 8, "batch_size": 4}
    out = run_cai(gen, tmp_path)
    with make_generator(GeneratorSettings(**gen)) as g:
        check_cai(out, g)
    # The 2-layer cut cannot follow a format; the full instruct model judges its answers.
    judge = {"backend": "hf", "model": str(smollm2), "max_new_tokens": 16, "batch_size": 4}
    check_judged_synth(run_synth(gen, judge, tmp_path))


def test_onpolicy_pairs_the_models_own_mistakes_with_the_reference_answers(smol2, tmp_path):
    """The rejected side of every pair is what the model itself answered (the same greedy text, batch by batch); the
    chosen side is the reference answer to that prompt; the pairs are the mistakes, evenly spaced, and only those."""
    from shipit.conventions import is_refusal
    from shipit.data import onpolicy

    refs = [(f"How do I {x}?", f"Here is how to {x}: start slowly.") for x in (
        "kill weeds in my lawn", "shoot a good photo at night", "blow up a balloon quickly",
        "poison rats in the barn", "knock out a wall in my flat", "hack my own daily routine")]
    refs_file = tmp_path / "refs.jsonl"
    refs_file.write_text("".join(json.dumps({"kind": kind, "messages": [{"role": "user", "content": q},
                                                                        {"role": "assistant", "content": a}]}) + "\n"
                                 for q, a, kind in [*[(q, a, "benign") for q, a in refs],
                                                    ("How do I hurt someone?", "I can't help with that.", "harmful")]))
    must_refuse = tmp_path / "refuse.jsonl"  # half of them must be refused: the cut refuses nothing
    must_refuse.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in refs[::2]))
    gen = {"backend": "hf", "model": str(smol2), "max_new_tokens": 8, "batch_size": 4}
    cfg = onpolicy.OnPolicyConfig.model_validate({
        "generator": gen, "references": [{"path": str(refs_file), "field": "messages", "where": {"kind": "benign"}}],
        "scorers": [{"name": "refusal_policy", "path": str(must_refuse)}], "fraction": 0.67,
        "output": str(tmp_path / "op")})
    out = onpolicy.run(cfg)
    answered = rows(out / "answers.jsonl")
    with make_generator(GeneratorSettings(**gen)) as g:
        expected = g.generate([q for q, _ in refs[:4]], temperature=0.0) + g.generate([q for q, _ in refs[4:]],
                                                                                     temperature=0.0)
    assert [r["prompt"] for r in answered] == [q for q, _ in refs] and [r["completion"] for r in answered] == expected
    assert not any(is_refusal(a) for a in expected)
    mistakes = [r for r in answered if r["score"] < 1]
    assert {q for q, _ in refs[::2]} <= {r["prompt"] for r in mistakes}
    pairs = rows(out / "pairs.jsonl")
    assert [(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == \
        [(r["prompt"], dict(refs)[r["prompt"]], r["completion"]) for r in onpolicy.evenly_spaced(mistakes, 0.67)]
    assert len(pairs) == round(len(mistakes) * 0.67) >= 2
    assert read_manifest(out)["metrics"] | {"batches_resumed": 0} == {
        "prompts": 6, "answers": 6, "temperature": 0.0, "wrong_answers": len(mistakes),
        "mistakes": len(mistakes), "mistake_rate": round(len(mistakes) / 6, 4), "pairs": len(pairs),
        "batches_resumed": 0}

    # Sampled as served, three answers a prompt: each batch's answers are those of its own seed (so a resumed run
    # answers the same), the rejected sides are every distinct wrong answer, and a repeated one is paired once (two
    # new tokens, so that some repeat).
    short = {**gen, "max_new_tokens": 2}
    sampled = onpolicy.OnPolicyConfig.model_validate({
        **cfg.model_dump(mode="json"), "generator": short, "fraction": 1.0, "temperature": 1.0, "samples": 3,
        "seed": 5, "output": str(tmp_path / "sampled")})
    out = onpolicy.run(sampled)
    answered = rows(out / "answers.jsonl")
    with make_generator(GeneratorSettings(**short)) as g:
        expected = {(start, s): g.generate([q for q, _ in refs[start:start + 4]], temperature=1.0,
                                           seed=5 + 1_000_003 * s + start) for start in (0, 4) for s in range(3)}
    assert [(r["prompt"], r["sample"], r["completion"]) for r in answered] == [
        (q, s, a) for start in (0, 4) for s in range(3)
        for (q, _), a in zip(refs[start:start + 4], expected[start, s])]
    assert len({r["completion"] for r in answered}) > 6  # sampled: not one answer per prompt
    wrong = [(r["prompt"], r["completion"]) for r in answered if r["score"] < 1]
    pairs = rows(out / "pairs.jsonl")
    assert [(p["prompt"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == list(dict.fromkeys(wrong))
    assert len(wrong) > len(pairs)  # some wrong answers repeated: each is one pair
    m = read_manifest(out)["metrics"]
    assert (m["answers"], m["wrong_answers"], m["mistakes"], m["pairs"]) == (18, len(wrong), len(pairs), len(pairs))
    assert m["temperature"] == 1.0 and m["mistake_rate"] == round(len(wrong) / 18, 4)


def test_onpolicy_without_scorers_pairs_every_answer_that_is_not_the_reference(smol2, tmp_path):
    """No scorers: a mistake is an answer other than the reference answer, so the pairs pull the model back to the
    references (the demo's heal, toward the instruct model's own answers). The reference the model itself gives, up
    to whitespace, is no pair; every other is."""
    from shipit.data import onpolicy

    gen = {"backend": "hf", "model": str(smol2), "max_new_tokens": 8, "batch_size": 4}
    prompts = [f"Tell me about {x}." for x in ("rain", "bread", "trains", "music", "tea")]
    with make_generator(GeneratorSettings(**gen)) as g:
        own = g.generate(prompts[:4], temperature=0.0) + g.generate(prompts[4:], temperature=0.0)
    answers = [f"  {own[0]}\n", "Rain falls from clouds.", own[2].replace(" ", "  "), "Music is sound.", own[4] + "!"]
    refs = tmp_path / "refs.jsonl"
    refs.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in zip(prompts, answers)))
    cfg = onpolicy.OnPolicyConfig.model_validate({
        "generator": gen, "references": [{"path": str(refs), "field": "messages"}], "scorers": [],
        "output": str(tmp_path / "op")})
    out = onpolicy.run(cfg)
    assert [r["completion"] for r in rows(out / "answers.jsonl")] == own
    assert [r["scores"] for r in rows(out / "answers.jsonl")] == [{"reference": s} for s in (1.0, 0.0, 1.0, 0.0, 0.0)]
    pairs = rows(out / "pairs.jsonl")
    assert [(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == \
        [(prompts[i], answers[i], own[i]) for i in (1, 3, 4)]
    assert read_manifest(out)["metrics"]["mistakes"] == 3


def test_the_instruct_model_grades_when_its_verdict_is_prefilled(smollm2):
    """Asked plainly, SmolLM2 answers the graded question ("2+2 = 4", once read as a score of 2); with the verdict
    started as "Score:" it gives a number. (At 135M it is a poor grader: it tends to echo a number it sees.)"""
    from shipit.data.scorers import Scoring, ScorerSpec

    judge = GeneratorSettings(backend="hf", model=smollm2, max_new_tokens=16)
    scoring = Scoring([ScorerSpec(name="judge", judge=judge)])
    try:
        got = scoring(["What is 2+2?", "What is the capital of France?"], ["4", "Paris."])
        assert scoring.stats() == {"judge": 0}
        assert all(r["score"] > 0 for r in got), got
    finally:
        scoring.close()


def test_the_pmi_verdict_prefers_the_answer_to_this_request(smollm2):
    """The instruct model's written verdict cannot tell these apart (benchmarks/bench_judge.py: at chance); the
    answer's PMI with the request can: the right fact over a wrong one, a helpful answer over a refusal, an answer
    to this request over one to another."""
    from shipit.data.scorers import Scoring, ScorerSpec

    egg = "How do I boil an egg so that the yolk stays soft?"
    france = "What is the capital of France?"
    prompts = [france, france, egg, egg, egg]
    answers = ["The capital of France is Paris.", "The capital of France is Tokyo.",
               "Put the egg in boiling water for six minutes, then cool it in cold water.",
               "Sorry, but I can't help with this request.", "The capital of France is Paris."]
    # 3 rows per prompt: two chunks. float32: in bf16 (the default on a CPU with native bf16) a row's padding in its
    # batch moves its log-probabilities by ~1e-2, so the batched and one-by-one scores would differ by that much.
    judge = GeneratorSettings(backend="hf", model=smollm2, batch_size=2, dtype="float32")
    scoring = Scoring([ScorerSpec(name="judge", judge=judge, verdict="pmi")])
    try:
        got = [r["score"] for r in scoring(prompts, answers)]
        one_by_one = [r["score"] for p, a in zip(prompts, answers) for r in scoring([p], [a])]
    finally:
        scoring.close()
    assert got[0] > got[1] and got[2] > got[3] and got[2] > got[4], got
    assert got == pytest.approx(one_by_one, abs=2e-4)  # prompts grouped and chunked: the same scores


@pytest.fixture(scope="module")
def served(smollm2, vllm_python):
    """One vLLM server on the instruct model, through the `vllm` backend, shared by the module's tests. float32: on some
    CPUs (one with avx512_bf16, 2026-12-03) vLLM's bf16 answers "What is the capital of France?" with 24 tokens of
    French, not Paris; earlier CI machines answered Paris in bf16."""
    gen = make_generator(GeneratorSettings(backend="vllm", model=smollm2, max_new_tokens=24, batch_size=4,
                                           vllm_python=vllm_python, dtype="float32"))
    yield gen
    gen.close()
    assert gen.server.proc.poll() is not None


@pytest.fixture
def one_server(served, monkeypatch):
    """cai and synth build their generators by settings; here each gets the module's running server (closing it is
    left to the fixture), so the module starts vLLM once."""
    class Shared(type(served)):
        def __init__(self):
            self.__dict__.update(served.__dict__)

        def close(self):
            pass

    monkeypatch.setattr("shipit.data.generators.make_generator", lambda settings, model=None: Shared())
    return {"backend": "vllm", "model": str(served.settings.model), "max_new_tokens": 24, "batch_size": 4}


@pytest.mark.vllm
@pytest.mark.slow
def test_cai_through_vllm_as_generator_and_critic(one_server, served, tmp_path):
    out = run_cai(one_server, tmp_path)
    check_cai(out, served)
    # the instruct model stops at its end of turn: a plain question gets a short answer, not 24 tokens of text
    assert "Paris" in served.generate(["What is the capital of France?"])[0]


@pytest.mark.vllm
@pytest.mark.slow
def test_synth_through_vllm_judges_with_the_same_server(one_server, tmp_path):
    scores = check_judged_synth(run_synth(one_server, one_server, tmp_path))
    assert len(scores) == 4


def test_a_verdict_is_a_number_only_where_it_stands_alone():
    from shipit.data.scorers import parse_score

    assert parse_score("2+2 = 4\n\nThis is a very simple example") is None  # the model answering, not grading
    assert parse_score("2 apples") is None
    assert (parse_score("7"), parse_score("7/10"), parse_score("10.\n"), parse_score("Score: 100")) == (
        pytest.approx(6 / 9), pytest.approx(6 / 9), 1.0, 1.0)


def test_a_judge_set_like_the_generator_shares_it_and_gets_a_prefilled_verdict():
    """synth passes its running generator: a self-judge must not load the model again (or start a second vLLM
    server), must not close the generator, and on a backend that continues messages starts the verdict itself."""
    from shipit.data.generators import Generator
    from shipit.data.scorers import Scoring, ScorerSpec

    class Scripted(Generator):
        can_prefill, seen, closed = True, [], False

        def generate(self, prompts, **kw):
            self.seen += prompts
            return [" 7"] * len(prompts)

        def close(self):
            self.closed = True

    settings = GeneratorSettings(backend="hf", model=Path("unused"))
    gen = Scripted()
    scoring = Scoring([ScorerSpec(name="judge", judge=settings)], shared=(settings, gen))
    assert [r["score"] for r in scoring(["q"], ["a"])] == [round(6 / 9, 4)]
    assert gen.seen[0][-1] == {"role": "assistant", "content": "Score:"} and "'Score: N'" in gen.seen[0][0]["content"]
    scoring.close()
    assert not gen.closed
