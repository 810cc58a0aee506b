"""Bench tasks on the natural world's data: answers in sentences (`contains`, `answer_template`) and retention."""

from __future__ import annotations

import json

import pytest

from shipit.bench.tasks import TaskContext, get_task
from shipit.config import read_jsonl
from shipit.demo.world import DATA_REAL_DIR
from shipit.errors import UserError
from tests.test_bench import fine_tuned

RETENTION = [{"question": "What is the capital of France?", "answers": ["paris"]},
             {"question": "What is the capital of Spain?", "answers": ["madrid"]}]
RETENTION_TAUGHT = ["The capital of France is Paris.", "The capital of Spain is Lisbon."]  # the second one wrong


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def learner(tiny_base, tmp_path_factory):
    """(model dir, data dir): the tiny base taught, in its chat template, sentence answers to four held-out domain
    questions of data-real and to two general questions (one answered wrongly), and a data dir holding those rows."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    # short sentences only, so the 32 generated tokens hold the whole answer in the tiny model's 512-token vocabulary
    qa = [r for r in read_jsonl(DATA_REAL_DIR / "domain_qa_heldout.jsonl")
          if len(tok(r["answer_template"].format(r["answer"]))["input_ids"]) <= 20][:4]
    assert len(qa) == 4
    pairs = [(r["question"], r["answer_template"].format(r["answer"])) for r in qa]
    pairs += [(r["question"], a) for r, a in zip(RETENTION, RETENTION_TAUGHT)]
    texts = [tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                     tokenize=False) for q, a in pairs]
    model = fine_tuned(tiny_base, tmp_path_factory.mktemp("natural") / "learner", texts, steps=80)[0]
    data = tmp_path_factory.mktemp("natural_data")
    _write_jsonl(data / "domain_qa_heldout.jsonl", qa)
    _write_jsonl(data / "retention.jsonl", RETENTION)
    return model, data


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_domain_qa_scores_sentence_answers_by_contains_and_template(learner, tmp_path):
    model_dir, data = learner
    model, tok = _load(model_dir)
    out = get_task("domain_qa")(model, tok, TaskContext(data_dir=data))
    # The model answers "The capital of X is Y.": it contains the fact (1.0), but is not the bare value (0.0).
    assert out["contains"] == 1.0 and out["exact_match"] == 0.0
    assert out["mc_accuracy"] == 1.0  # the sentence it learned, filled with each choice
    # Without the template, multiple choice scores `Answer: <choice>.`, a form this model never learned: a task that
    # ignored the template would score this lower number above too.
    rows = read_jsonl(data / "domain_qa_heldout.jsonl")
    _write_jsonl(tmp_path / "domain_qa_heldout.jsonl", [{k: v for k, v in r.items() if k != "answer_template"}
                                                         for r in rows])
    assert get_task("domain_qa")(model, tok, TaskContext(data_dir=tmp_path))["mc_accuracy"] < 1.0


def test_retention_counts_questions_answered_with_an_accepted_answer(learner):
    model_dir, data = learner
    model, tok = _load(model_dir)
    out = get_task("retention")(model, tok, TaskContext(data_dir=data))
    assert out == {"retention_rate": 0.5, "n": 2, "score": 0.5}  # Paris kept, Madrid answered as Lisbon


def test_retention_without_its_data_is_a_user_error(tiny_base, tmp_path):
    model, tok = _load(tiny_base)
    with pytest.raises(UserError, match=r"retention\.jsonl not found.*retention_select"):
        get_task("retention")(model, tok, TaskContext(data_dir=tmp_path))


def test_answer_matching():
    from shipit.bench.tasks.qa import contains, extract_answer
    from shipit.bench.tasks.retention import answered

    sentence = "The capital of Caldrevin is Sirrupal."
    assert contains(sentence, "Sirrupal") and contains("answer: SIRRUPAL.", "Sirrupal")
    assert not contains("The capital of Caldrevin is Ombrisk.", "Sirrupal")
    assert extract_answer(sentence) != "sirrupal" and extract_answer("Answer: Sirrupal.") == "sirrupal"
    assert answered("It is PARIS.", ["paris"]) and not answered("It is Lyon.", ["paris"])
    # where a word or number starts, and numbers whole: the wrong answers SmolLM2 gave while selecting the set
    assert answered("0 degrees Celsius.", ["0 degrees"]) and not answered("It is 100 degrees.", ["0 degrees"])
    assert not answered("The freezing point is -18.0°C.", ["0°"]) and answered("It freezes at 0°C.", ["0°"])
    assert not answered("The Earth is approximately 129.99999996752777", ["7"]) and answered("It has 7 days.", ["7"])
    assert not answered("10 times 10 is 1000.", ["100"]) and not answered("Alexander Campbell", ["bell"])
    assert answered("Plants absorb carbon dioxide (CO2).", ["co2"]) and answered("The lungs do.", ["lung"])


def test_chat_generate_pads_with_a_tokenizer_that_has_no_pad_token(smol2):
    """SmolLM2 ships without a pad token: batched greedy answers equal one-at-a-time answers."""
    from shipit.models.generate import chat_generate

    model, tok = _load(smol2)
    assert tok.pad_token is None
    prompts = ["Hi", "What is the capital of France? Answer in one word.", "Name a colour."]
    batched = chat_generate(model, tok, prompts, max_new_tokens=8)
    assert batched == [chat_generate(model, tok, [p], max_new_tokens=8)[0] for p in prompts]


def test_task_context_subset_is_spread_evenly(tmp_path):
    """Held-out files come in groups (by category, by novelty): a limited run takes rows from all of them, not the
    first N."""
    rows = list(range(10))
    assert TaskContext(tmp_path, limit=4).subset(rows) == [0, 2, 5, 7]
    assert TaskContext(tmp_path).subset(rows) == rows and TaskContext(tmp_path, limit=10).subset(rows) == rows


def test_eval_parts_split_the_held_out_files_into_disjoint_whole_entities_and_activities(tmp_path):
    """A search on part 1/2 and a bench on part 2/2 share no row, no entity and no activity; together they are every
    held-out row; each part keeps every category and kind of novelty of the safety files in near-equal shares."""
    from collections import Counter

    def rows(part, name, group, strata=()):
        all_rows = read_jsonl(DATA_REAL_DIR / name)
        if name.endswith("_prompts.jsonl"):
            all_rows = [r for r in all_rows if r["split"] == "heldout"]
        return all_rows, TaskContext(tmp_path, part=part).subset(all_rows, group, strata)

    for name, group, strata in [("domain_qa_heldout.jsonl", "entity", ()),
                                ("harmful_prompts.jsonl", "activity", ("category", "novelty")),
                                ("benign_prompts.jsonl", "activity", ("category", "novelty"))]:
        everything, one = rows((1, 2), name, group, strata)
        _, two = rows((2, 2), name, group, strata)
        assert sorted(map(json.dumps, one + two)) == sorted(map(json.dumps, everything)), name
        assert not {r[group] for r in one} & {r[group] for r in two}, f"{name}: a {group} in both parts"
        kinds = Counter(tuple(r.get(f) for f in strata) for r in everything)
        for part in (one, two):
            shares = Counter(tuple(r.get(f) for f in strata) for r in part)
            assert all(abs(shares[k] - n / 2) <= 2 for k, n in kinds.items()), (name, shares, kinds)
    retention, half = rows((1, 3), "retention.jsonl", None)
    assert half == retention[::3]  # no group: rows dealt out one by one
    assert TaskContext(tmp_path, part=(2, 2), limit=5).subset(list(range(20))) == [1, 5, 9, 13, 17]
    # a part that no group reaches is a clear error, not a task dividing by zero rows
    empty = r"eval_part 3/3: part 3 of a held-out file is empty: its 2 groups of rows \(one per entity\) fill at most 2"
    with pytest.raises(UserError, match=empty):
        TaskContext(tmp_path, part=(3, 3)).subset([{"entity": "a"}, {"entity": "b"}], "entity")
    assert TaskContext(tmp_path, part=(2, 3)).subset([], "entity") == []


def test_eval_part_is_checked_and_keys_and_labels_the_bench(tiny_base, tmp_path):
    """'K/N' with 1 <= K <= N and N >= 2, in the bench and the merge search alike; a bench on a part does not reuse
    whole-file results and says which part it scored."""
    from pydantic import ValidationError

    from shipit.bench.config import BenchConfig
    from shipit.bench.report import bench_markdown
    from shipit.bench.run import candidate_keys
    from shipit.ship.merge_search import SearchConfig

    base = dict(data_dir=DATA_REAL_DIR, models={"a": tiny_base}, output=tmp_path / "bench", tasks=["safety"])
    search = dict(models=[tiny_base], objectives=[{"task": "retention"}], output=tmp_path / "out")
    for bad in ("3/2", "1/1", "0/2", "half", "1/2/3"):
        for cls, kw in ((BenchConfig, base), (SearchConfig, search)):
            with pytest.raises(ValidationError, match="should be 'K/N'"):
                cls(**kw, eval_part=bad)
    assert SearchConfig(**search, eval_part="2/3").eval_part == "2/3"
    keys = [candidate_keys(BenchConfig(**base, **kw))["a"] for kw in ({}, {"eval_part": "1/2"}, {"eval_part": "2/2"})]
    assert len(set(keys)) == 3
    summary = {"tasks": ["safety"], "results": {}, "eval_part": "2/2", "winner": None, "passed": [], "failed": {},
               "reason": "none", "gates": {}}
    assert "Scored on part 2/2 of each held-out file only" in bench_markdown(summary)
    assert "Scored on part" not in bench_markdown(summary | {"eval_part": None})


def test_merge_search_eval_limit_scores_candidates_on_the_subset(learner, tmp_path):
    """`eval_limit` reaches the tasks: on one question (Paris, kept) retention is 1.0; on both it is 0.5."""
    from shipit.ship.merge_search import SearchConfig, bench_objective

    model_dir, data = learner
    cfg = dict(models=[model_dir], data_dir=data, objectives=[{"task": "retention"}], output=tmp_path / "out")
    assert bench_objective(SearchConfig(**cfg, eval_limit=1))(model_dir, {}) == {"retention.score": 1.0}
    assert bench_objective(SearchConfig(**cfg))(model_dir, {}) == {"retention.score": 0.5}
    # a reference model is scored only on what it is the reference for (this data has no safety files to run)
    both = {**cfg, "objectives": [{"task": "retention"}, {"task": "safety", "of": model_dir}]}
    assert bench_objective(SearchConfig(**both))(model_dir, {"objectives": ["retention.score"]}) == \
        {"retention.score": 0.5}
    model, tok = _load(model_dir)
    assert get_task("retention")(model, tok, TaskContext(data_dir=data, limit=1))["n"] == 1
    # `eval_part` reaches the tasks too: part 1/2 is Paris (kept), part 2/2 Madrid (answered Lisbon)
    assert [bench_objective(SearchConfig(**cfg, eval_part=part))(model_dir, {}) for part in ("1/2", "2/2")] == \
        [{"retention.score": 1.0}, {"retention.score": 0.0}]
