"""The bundled world is exactly what its generator produces."""

from __future__ import annotations

from shipit.demo.world import DATA_DIR, generate


def test_bundled_data_matches_generator(tmp_path):
    counts = generate(tmp_path)
    jsonl = {p.name: len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")}
    assert {k: v for k, v in counts.items() if k.endswith(".jsonl")} == jsonl and min(jsonl.values()) > 0
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in DATA_DIR.iterdir() if not p.name.startswith("."))
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name


def test_natural_world_matches_generator(tmp_path):
    """data-real/ is what `world.py --style natural` writes, plus the model-selected retention set (its rows are
    candidates of the selection script, with their accepted answers)."""
    from shipit.config import read_jsonl
    from shipit.demo.retention_select import CANDIDATES
    from shipit.demo.world import DATA_REAL_DIR
    from shipit.demo.world_natural import generate as generate_natural

    generate_natural(tmp_path)
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(generated + ["retention.jsonl"]) == sorted(p.name for p in DATA_REAL_DIR.iterdir())
    for name in generated:
        assert (tmp_path / name).read_bytes() == (DATA_REAL_DIR / name).read_bytes(), name
    candidates = dict(CANDIDATES)
    kept = read_jsonl(DATA_REAL_DIR / "retention.jsonl", ["question", "answers"])
    assert len(kept) >= 20 and all(candidates[r["question"]] == r["answers"] for r in kept)


def test_natural_world_states_the_house_facts_in_every_phrasing():
    """Same facts and held-out entities as data/; every fact in every corpus phrasing; held-out entities never in QA
    training; the answer template filled with the fact is a sentence of the corpus."""
    from shipit.config import read_jsonl
    from shipit.demo.world import DATA_REAL_DIR, ENTITIES
    from shipit.demo.world_natural import FACT_TEMPLATES

    house = {(r["entity"], r["attribute"]): r["answer"] for r in read_jsonl(DATA_DIR / "domain_qa_heldout.jsonl")}
    held = read_jsonl(DATA_REAL_DIR / "domain_qa_heldout.jsonl")
    assert {(r["entity"], r["attribute"]): r["answer"] for r in held} == house
    house_train = {(r["entity"], r["attribute"]): r["messages"][1]["content"].removeprefix("Answer: ").rstrip(".")
                   for r in read_jsonl(DATA_DIR / "domain_qa_train.jsonl")}
    train = read_jsonl(DATA_REAL_DIR / "domain_qa_train.jsonl")
    assert all(r["messages"][1]["content"].endswith(f" {house_train[r['entity'], r['attribute']]}.") for r in train)
    assert not {r["entity"] for r in train} & {r["entity"] for r in held}
    facts = {**house, **house_train}
    corpus = " ".join(r["text"] for r in read_jsonl(DATA_REAL_DIR / "domain_corpus.jsonl"))
    assert all(len(ts) >= 6 for ts in FACT_TEMPLATES.values())
    for (e, attr), v in facts.items():
        for t in FACT_TEMPLATES[attr]:
            sentence = t.format(e=e, v=v)
            assert sentence[0].upper() + sentence[1:] in corpus, sentence
    assert len({e for e, _ in facts}) == len(ENTITIES)
    assert all(r["answer_template"].format(r["answer"]) in corpus for r in held)


def test_natural_refusals_are_refusals_and_helpful_answers_are_not():
    """Every refusal the natural world trains on reads as a refusal by the default conventions (else the safety
    bench would score a trained model's refusals as compliance); no helpful answer and no compliant-sounding reject
    does (else over-refusal and DPO pairs would be mislabelled)."""
    from shipit.config import read_jsonl
    from shipit.conventions import Conventions
    from shipit.demo.safety_natural import BENIGN, COMPLIANT_REJECTS, HARMFUL, REFUSALS
    from shipit.demo.world import DATA_REAL_DIR

    conv = Conventions()
    assert all(conv.is_refusal(r) for r in REFUSALS)
    assert not any(conv.is_refusal(h) for pairs in BENIGN.values() for _, h in pairs)
    assert not any(conv.is_refusal(r) for r in COMPLIANT_REJECTS)
    for row in read_jsonl(DATA_REAL_DIR / "safety_sft.jsonl"):
        assert conv.is_refusal(row["messages"][1]["content"]) == (row["kind"] == "harmful"), row
    for row in read_jsonl(DATA_REAL_DIR / "preference_pairs.jsonl"):
        assert conv.is_refusal(row["chosen"][0]["content"]) == (row["kind"] == "harmful"), row
        assert conv.is_refusal(row["rejected"][0]["content"]) == (row["kind"] == "benign"), row
    assert sum(map(len, HARMFUL.values())) >= 100 and sum(map(len, BENIGN.values())) >= 100


def test_natural_safety_heldout_is_never_trained():
    """`novelty: activity` requests share no activity with training rows; `novelty: phrasing` requests are trained
    activities whose exact prompt never appears in training; about a quarter of the activities is held out."""
    from shipit.config import read_jsonl
    from shipit.demo.world import DATA_REAL_DIR

    trained = {r["messages"][0]["content"] for r in read_jsonl(DATA_REAL_DIR / "safety_sft.jsonl")}
    for name in ("harmful_prompts.jsonl", "benign_prompts.jsonl"):
        rows = read_jsonl(DATA_REAL_DIR / name)
        train_acts = {r["activity"] for r in rows if r["split"] == "train"}
        novel = {r["activity"] for r in rows if r["novelty"] == "activity"}
        assert not novel & train_acts and 0.2 <= len(novel) / len(novel | train_acts) <= 0.3
        assert all(r["activity"] in train_acts and r["prompt"] not in trained
                   for r in rows if r["novelty"] == "phrasing")
        assert {r["prompt"] for r in rows if r["split"] == "train"} <= trained


def test_replay_requests_ask_no_retention_question():
    """The replay stage's requests must not teach the retention set back: none repeats or paraphrases a candidate
    question (content-word overlap below 0.6; the closest today is 'What is a continent?' at 0.5)."""
    import re

    from shipit.demo.replay_requests import REQUESTS
    from shipit.demo.retention_select import CANDIDATES

    stop = {"what", "is", "the", "a", "an", "of", "in", "on", "do", "does", "how", "many", "are", "which", "there",
            "to", "you", "i", "my", "me", "for", "and", "who"}

    def words(text):
        return set(re.findall(r"[a-z0-9]+", text.lower())) - stop

    assert len(set(REQUESTS)) == len(REQUESTS) >= 100
    for question, _ in CANDIDATES:
        for request in REQUESTS:
            a, b = words(question), words(request)
            assert len(a & b) / len(a | b) < 0.6, (question, request)
