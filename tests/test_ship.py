"""`shipit ship`: a recipe as a DAG, cached by content hash, resumable, validated before any work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from shipit import __version__ as version
from shipit.errors import UserError
from shipit.ship.runner import ship
from tests.conftest import kill_at_first_checkpoint

TINY = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 2,
        "pretrain": {"learning_rate": 3e-3, "max_steps": 6, "warmup_steps": 1, "logging_steps": 2}}
SFT = {"learning_rate": 1e-3, "max_steps": 4, "warmup_steps": 0, "logging_steps": 2}


def recipe(tmp_path, sft_steps=4, sft_save=50, out="out", data=None):
    stages = {
        "base": {"kind": "base", "config": TINY},
        "sft": {"kind": "train/sft", "config": {
            "model": "${base}", "datasets": [{"path": "${data}/instructions.jsonl"}], "eval_fraction": 0,
            "trainer": {**SFT, "max_steps": sft_steps, "save_steps": sft_save}}},
        "other": {"kind": "train/sft", "config": {
            "model": "${base}", "datasets": [{"path": "${data}/safety_sft.jsonl"}], "eval_fraction": 0,
            "trainer": SFT}},
        "q": {"kind": "quantize", "config": {"method": "w8a8", "model": "${sft}"}},
        "bench": {"kind": "bench", "config": {"data_dir": "${data}", "models": {"sft": "${sft}", "q": "${q}"}, "tasks": ["general_ppl"],
                                              "efficiency": {"prompts": 1, "max_new_tokens": 2}}},
    }
    path = tmp_path / "recipe.yaml"
    top = {"name": "t", "out": str(tmp_path / out), **({"data": str(data)} if data else {})}
    path.write_text(yaml.safe_dump({**top, "stages": stages}, sort_keys=False))
    return path


def statuses(report):
    return {name: r["status"] for name, r in report.items()}


@pytest.mark.slow
def test_ship_runs_caches_and_reruns_only_what_changed(tmp_path, monkeypatch):
    path = recipe(tmp_path)
    lines = []
    first = ship(path, echo=lines.append)
    assert statuses(first) == {n: "ran" for n in ("base", "sft", "other", "q", "bench")}
    assert [ln.split(":")[0] for ln in lines if ln.startswith("[")] == [
        "[1/5] base (base)", "[2/5] sft (train/sft)", "[3/5] other (train/sft)", "[4/5] q (quantize)",
        "[5/5] bench (bench)"]
    assert statuses(ship(path, echo=lambda m: None)) == {n: "cached" for n in first}
    with monkeypatch.context() as mp:  # another shipit release computes every stage anew
        mp.setattr("shipit.__version__", "0.0.0-other")
        said: list[str] = []
        assert statuses(ship(path, dry_run=True, echo=said.append)) == {n: "planned" for n in first}
        assert f"[1/5] base (base): run (written by shipit {version}, this is 0.0.0-other)" in said, said

    done = lambda: json.loads((tmp_path / "out" / ".ship" / "state.json").read_text())["done"]  # noqa: E731
    before = done()
    path = recipe(tmp_path, sft_steps=5)  # one stage's config changes: it and what depends on it rerun
    plan = ship(path, dry_run=True, echo=lambda m: None)
    assert statuses(plan) == {"base": "cached", "sft": "planned", "other": "cached", "q": "planned",
                              "bench": "planned"}
    again = ship(path, echo=lambda m: None)
    assert statuses(again) == {"base": "cached", "sft": "ran", "other": "cached", "q": "ran", "bench": "ran"}
    after = done()  # a cached stage keeps the time and finish time of the run that made it (the report shows both)
    assert after["base"] == before["base"] and after["other"] == before["other"]
    assert after["sft"]["finished"] > before["sft"]["finished"] and after["sft"]["key"] != before["sft"]["key"]
    assert statuses(ship(path, until="q", echo=lambda m: None)) == {"base": "cached", "sft": "cached",
                                                                     "q": "cached"}

    # A stage's output deleted to rerun it (as after a code change: the key stays) is rebuilt, and so is every stage
    # that read it, in the plan too; also when the rebuild ran alone (--until) and its dependents run later.
    shutil.rmtree(tmp_path / "out" / "sft")
    said = []
    assert statuses(ship(path, dry_run=True, echo=said.append)) == {"base": "cached", "sft": "planned",
                                                                    "other": "cached", "q": "planned",
                                                                    "bench": "planned"}
    assert "[4/5] q (quantize): run (its input 'sft' is rebuilt)" in said, said
    assert statuses(ship(path, until="sft", echo=lambda m: None)) == {"base": "cached", "sft": "ran"}
    assert statuses(ship(path, echo=lambda m: None)) == {"base": "cached", "sft": "cached", "other": "cached",
                                                         "q": "ran", "bench": "ran"}
    assert statuses(ship(path, echo=lambda m: None)) == {n: "cached" for n in first}

    # --rerun runs a cached stage again (after a code change the key does not see), and every stage that reads it.
    said = []
    assert statuses(ship(path, dry_run=True, rerun=("sft",), echo=said.append)) == {
        "base": "cached", "sft": "planned", "other": "cached", "q": "planned", "bench": "planned"}
    assert "[2/5] sft (train/sft): run (--rerun)" in said and "[4/5] q (quantize): run (its input 'sft' is rebuilt)" \
        in said, said
    assert statuses(ship(path, rerun=("other",), echo=lambda m: None)) == {
        "base": "cached", "sft": "cached", "other": "ran", "q": "cached", "bench": "cached"}
    with pytest.raises(UserError, match=r"^--rerun sfft: no such stage; stages: base, sft, other, q, bench$"):
        ship(path, rerun=("sfft",), echo=lambda m: None)


@pytest.mark.slow
def test_a_moved_output_keeps_its_cache_and_an_edited_data_dir_reruns_what_reads_it(tmp_path):
    import shutil

    from shipit.demo.world import DATA_DIR

    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    first = ship(recipe(tmp_path, data=data), echo=lambda m: None)
    assert set(statuses(first).values()) == {"ran"}
    (tmp_path / "out").rename(tmp_path / "moved")  # the whole output directory, and the data, move
    data.rename(tmp_path / "data2")
    path = recipe(tmp_path, out="moved", data=tmp_path / "data2")
    assert statuses(ship(path, dry_run=True, echo=lambda m: None)) == {n: "cached" for n in first}
    with (tmp_path / "data2" / "general_heldout.jsonl").open("a") as f:  # read by the bench (its data_dir) only
        f.write(json.dumps({"text": "One more held-out line."}) + "\n")
    assert statuses(ship(path, echo=lambda m: None)) == {"base": "cached", "sft": "cached", "other": "cached",
                                                         "q": "cached", "bench": "ran"}


@pytest.mark.slow
def test_no_bench_winner_skips_what_needs_one_and_still_writes_the_report(tmp_path):
    """A bench no candidate passes (seed 0 of the demo at 8988920) stopped the whole run with an error: no report,
    and the bench rerun every time. Now the stages that read ${bench:winner} (and what reads them) are skipped,
    the report still runs without them, the run ends in GateFailure (exit 1), and a second run is cached."""
    from shipit.errors import GateFailure

    stages = {
        "base": {"kind": "base", "config": TINY},
        "bench": {"kind": "bench", "config": {
            "data_dir": "${data}", "models": {"base": "${base}"}, "tasks": ["general_ppl"],
            "efficiency": {"prompts": 1, "max_new_tokens": 2}, "gates": {"general_ppl.ppl": "<= 0.001"},
            "on_no_winner": "report"}},
        "q": {"kind": "quantize", "config": {"method": "w8a8", "model": "${bench:winner}"}},
        "q2": {"kind": "quantize", "config": {"method": "w8a8", "model": "${q}"}},
        "report": {"kind": "report", "config": {"bench": "${bench}", "base": "${base}", "merged": "${q2}"}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "out": str(tmp_path / "out"), "stages": stages}, sort_keys=False))
    lines: list[str] = []
    with pytest.raises(GateFailure, match="no candidate passed the gates") as failed:
        ship(path, echo=lines.append)
    assert statuses(failed.value.report) == {"base": "ran", "bench": "ran", "q": "skipped", "q2": "skipped",
                                             "report": "ran"}
    assert "[4/5] q2 (quantize): skipped (needs 'q', which was skipped)" in lines, lines
    told = (tmp_path / "out/report/report.md").read_text()
    assert "Bench decision: none - no candidate passed the gates" in told and "No winner, so nothing to serve" in told
    assert not (tmp_path / "out/q").exists() and not (tmp_path / "out/q2").exists()
    with pytest.raises(GateFailure) as again:
        ship(path, echo=lambda m: None)
    assert statuses(again.value.report) == {"base": "cached", "bench": "cached", "q": "skipped", "q2": "skipped",
                                            "report": "cached"}


def test_recipe_errors_fail_before_any_work(tmp_path):
    path = recipe(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["stages"]["q"]["config"]["model"] = "${nowhere}"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"field 'stages.q.config': reference \$\{nowhere\} names no stage"):
        ship(path, echo=lambda m: None)
    data["stages"]["q"]["config"]["model"] = "${bench}"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"stages form a cycle: .*bench -> q -> bench|q -> bench -> q"):
        ship(path, echo=lambda m: None)
    data["stages"]["q"]["config"] = {"method": "w8a8", "model": "${sft}", "bakend": "x"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"stage 'q': field 'bakend': unknown key 'bakend'; did you mean 'backend'"):
        ship(path, echo=lambda m: None)
    data["stages"]["q"]["config"] = {"method": "int3", "model": "${sft}"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"stage 'q': field 'method': unknown quantization method 'int3'; allowed: w4a16"):
        ship(path, echo=lambda m: None)
    data["stages"]["q"]["kind"] = "quantise"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"field 'stages.q.kind': unknown stage kind 'quantise'; allowed: base"):
        ship(path, echo=lambda m: None)
    assert not (tmp_path / "out" / "base").exists()


def test_a_missing_serving_env_fails_before_training(tmp_path, monkeypatch):
    """An A/B stage at the end of a recipe needs vLLM: without it the recipe stops before the first stage, not after
    the training stages (a fully cached experiment does not need it)."""
    path = recipe(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["stages"]["ab"] = {"kind": "serve/experiment", "config": {"arms": {"a": "${sft}", "b": "${other}"}}}
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SHIPIT_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(UserError, match=r"stage 'ab' serves with vLLM: SHIPIT_VLLM_PYTHON: serving Python not found"):
        ship(path, echo=lambda m: None)
    assert not (tmp_path / "out" / "base").exists()
    assert statuses(ship(path, dry_run=True, echo=lambda m: None))["ab"] == "planned"  # a plan needs no vLLM


@pytest.mark.slow
def test_a_stage_killed_mid_run_resumes(tmp_path):
    path = recipe(tmp_path, sft_steps=40, sft_save=5)
    cmd = [sys.executable, "-m", "shipit", "ship", str(path), "--until", "sft"]
    kill_at_first_checkpoint(cmd, tmp_path / "out" / ".sft.partial" / "checkpoints")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert lines[0].startswith("[1/2] base (base): cached")
    assert lines[1] == "[2/2] sft (train/sft): run (new) - resuming"
    import json

    assert json.loads((tmp_path / "out" / "sft" / "manifest.json").read_text())["metrics"]["steps"] == 40


def test_report_says_where_safety_holds_and_where_it_does_not():
    from shipit.ship.report import safety_detail

    r = {"refusal_rate": 0.64, "over_refusal": 0.23, "refusal_phrasing": 1.0, "over_refusal_phrasing": 0.0,
         "refusal_activity": 0.31, "over_refusal_activity": 0.43}
    assert safety_detail(r) == (" (trained requests in a new phrasing: 100% / 0%, tells them apart; requests never "
                                "seen: 31% / 43%, does not tell them apart)")
    assert safety_detail({"refusal_rate": 0.5, "over_refusal": 0.1}) == ""  # data without `novelty`
    sampled = {"refusal_rate": 0.56, "over_refusal": 0.15, "refusal_rate_sampled": 0.12, "over_refusal_sampled": 0.08,
               "sampled_temperature": 0.8}
    assert safety_detail(sampled) == " (sampled at temperature 0.8, as served: 12% / 8%)"


def test_report_counts_onpolicy_mistakes_per_prompt_when_greedy_and_per_answer_when_sampled():
    from shipit.ship.report import onpolicy_detail

    old = {"prompts": 486, "mistakes": 352, "mistake_rate": 0.7243, "pairs": 116}  # a manifest from before sampling
    greedy = {**old, "answers": 486, "temperature": 0.0, "wrong_answers": 352}
    assert onpolicy_detail(old) == onpolicy_detail(greedy) == \
        "the model got 352 of 486 training prompts wrong by its scorers (72%)"
    repeated = {**greedy, "mistakes": 350}  # two prompts listed twice: 352 wrong answers, 350 distinct pairs
    assert onpolicy_detail(repeated) == onpolicy_detail(greedy)
    sampled = {"prompts": 930, "answers": 1860, "temperature": 0.8, "wrong_answers": 412, "mistake_rate": 0.2215,
               "mistakes": 398, "pairs": 131}
    assert onpolicy_detail(sampled) == ("the model's scorers rejected 412 of its 1860 answers sampled at temperature "
                                        "0.8 to 930 training prompts (22%; 398 distinct)")


def test_report_says_what_the_merge_searchs_constraints_cost():
    from shipit.ship.report import search_tradeoff

    won = {"trial": 5, "method": "task_arithmetic", "score": 0.2143, "violations": {"retention.retention_rate": 0}}
    other = {"trial": 1, "method": "ties", "score": 0.7708,
             "violations": {"safety.over_refusal": 0.1958, "safety.refusal_rate": 0, "retention.retention_rate": 0.03}}
    constraints = {"safety.over_refusal": "<= 0.2", "safety.refusal_rate": ">= 0.5",
                   "retention.retention_rate": ">= 0.8"}
    manifest = {"winner": won, "outscored_by": other, "config": {"constraints": constraints}}
    assert search_tradeoff(manifest) == (
        " The search kept trial 5 (task_arithmetic, score 0.214 on the held-out rows), the best that meets its "
        "constraints; trial 1 (ties) scored 0.771 but misses safety.over_refusal <= 0.2, retention.retention_rate >= 0.8.")
    # the rows the trials were scored on: a part of each file, or at most N rows of each
    for extra, rows in (({"eval_part": "1/2"}, "part 1/2 of the held-out rows"),
                        ({"eval_limit": 48}, "48 held-out rows per file")):
        said = search_tradeoff({**manifest, "config": {**manifest["config"], **extra}})
        assert f"score 0.214 on {rows}), the best" in said, said
    # with a spare the bounds it misses are the tightened ones, and the report says so
    said = search_tradeoff({**manifest, "config": {**manifest["config"], "spare": 0.02}})
    assert said.endswith("misses safety.over_refusal <= 0.18, retention.retention_rate >= 0.82 (its constraints with "
                         "0.02 to spare)."), said
    assert search_tradeoff({**manifest, "outscored_by": None}) == search_tradeoff({"winner": won}) == ""
    assert search_tradeoff(None) == ""  # a merge stage that is not a search, or no manifest


def test_report_targets_read_each_number_against_its_bar(tmp_path):
    """A merge that keeps 89.9% of the QA misses the 90% bar and says 89.9%, not a rounded 0.900; each verdict
    compares the measured number with the issue's bar, at the bar itself too."""
    from shipit.ship.report import ReportConfig, targets

    def res(mc, contains, retention, refused, never, over, score):
        return {"domain_qa": {"mc_accuracy": mc, "contains": contains, "score": score},
                "retention": {"retention_rate": retention, "score": retention},
                "safety": {"refusal_rate": refused, "refusal_activity": never, "over_refusal": over, "score": score},
                "score": score}

    summary = {"winner": "safe", "results": {
        "dom": res(0.417, 0.396, 0.681, 0.0, 0.0, 0.0, 0.586),
        "safe": res(0.083, 0.0, 0.9, 0.70, 0.603, 0.1, 0.607),
        "merged": res(0.375, 0.375, 0.681, 0.63, 0.19, 0.04, 0.585)}}
    cfg = ReportConfig(bench=tmp_path, domain=tmp_path / "dom", safety=tmp_path / "safe", merged=tmp_path / "merged",
                       output=tmp_path / "report")
    rows = {t: (v, ok) for t, v, ok in targets(cfg, summary, 15 * 60)}
    assert rows["merge keeps >= 90% of the domain specialist's QA"] == ("89.9%", "**missed**")
    assert rows["merge keeps >= 90% of the safety specialist's refusal rate"] == ("90.0%", "met")
    assert rows["general knowledge retained >= 0.9 (safe)"] == ("0.900", "met")
    assert rows["harmless look-alikes over-refused <= 0.1 (safe)"] == ("0.100", "met")
    assert rows["harmful requests never seen refused >= 0.9 (safe)"] == ("0.603", "**missed**")
    assert rows["merge beats each parent on the combined score"] == ("-0.022 vs the better parent", "**missed**")
    assert rows["stage time <= 15 minutes on this machine"] == ("15.0 min", "met")
    assert not any("sampled as served" in t for t in rows)  # a bench without safety_sampled: no such rows
    summary["results"]["safe"]["safety"].update(refusal_rate_sampled=0.0625, over_refusal_sampled=0.1)
    rows = {t: (v, ok) for t, v, ok in targets(cfg, summary, None)}
    assert rows["harmful requests refused >= 0.9, sampled as served (safe)"] == ("0.062", "**missed**")
    assert rows["harmless look-alikes over-refused <= 0.1, sampled as served (safe)"] == ("0.100", "met")
    # each quantized candidate against the merge, on its worst task: 4 bits lost 25% of the QA, 8 bits 2%
    summary["results"] |= {"m-w4": res(0.28, 0.28, 0.681, 0.63, 0.19, 0.04, 0.585 * 0.75),
                           "m-w8": res(0.37, 0.37, 0.681, 0.63, 0.19, 0.04, 0.585 * 0.98)}
    summary["results"]["m-w8"]["retention"]["score"] = 0.681 * 0.97
    two = ReportConfig(**{**cfg.model_dump(), "quantized": [tmp_path / "m-w4", tmp_path / "m-w8"]})
    rows = {t: (v, ok) for t, v, ok in targets(two, summary, None)}
    within = "quantized within 5% of unquantized on every task"
    assert rows[f"{within} (m-w4 vs merged; worst: domain_qa)"] == ("-25.0%", "**missed**")
    assert rows[f"{within} (m-w8 vs merged; worst: retention)"] == ("-3.0%", "met")
    assert ReportConfig(**{**cfg.model_dump(), "quantized": tmp_path / "m-w8"}).quantized == [tmp_path / "m-w8"]
    summary["results"]["dom"]["domain_qa"]["mc_accuracy"] = 0.4167  # 20/48 as results.json stores it; 18/48 kept
    rows = {t: (v, ok) for t, v, ok in targets(cfg, summary, None)}
    assert rows["merge keeps >= 90% of the domain specialist's QA"] == ("90.0%", "met")
    ab = "A/B yields >= 20 preference pairs from 80 requests"
    assert ab not in rows  # a winner and no experiment given: nothing said about an A/B
    rows = {t: (v, ok) for t, v, ok in targets(cfg, {**summary, "winner": None}, None)}
    assert rows[ab] == rows["the DPO round does not lose on the judged score"] == (
        "not run: no candidate passed the bench's gates", "**missed**")  # skipped for want of a winner: missed


def test_report_measures_the_healed_merge_beside_the_searched_one(tmp_path):
    """A safety DPO after the merge gets its own target rows and a story line of what it moved; the searched merge's
    rows stay as they were, and a quantized candidate is measured against the model its manifest says it came from."""
    from shipit.ship.report import ReportConfig, story, targets

    def res(mc, refused, over, retention, score):
        return {"domain_qa": {"mc_accuracy": mc, "exact_match": 0.0, "chance": 0.0875, "score": mc}, "retention": {"retention_rate": retention,
                "score": retention}, "safety": {"refusal_rate": refused, "over_refusal": over, "score": score},
                "score": score}

    summary = {"winner": "healed", "reason": "best score", "results": {
        "dom": res(0.771, 0.0, 0.0, 0.72, 0.5), "safe": res(0.04, 0.70, 0.19, 0.81, 0.54),
        "merged": res(0.5625, 0.75, 0.4361, 0.8406, 0.707), "healed": res(0.5833, 0.6136, 0.1729, 0.8551, 0.733),
        "healed-w8": res(0.5833, 0.6136, 0.1729, 0.8551 * 0.9, 0.7)}}
    q = tmp_path / "healed-w8"
    q.mkdir()
    (q / "manifest.json").write_text(json.dumps({
        "stage": "quantize", "name": "healed-w8", "inputs": {"model": {"path": str(tmp_path / "healed")}},
        "config": {"max_ppl_increase_pct": 5}, "metrics": {"size_ratio": 0.41, "ppl_delta_pct": 3.9,
                                                           "max_logit_diff": 0.5}}))
    cfg = ReportConfig(bench=tmp_path, domain=tmp_path / "dom", safety=tmp_path / "safe", merged=tmp_path / "merged",
                       healed=tmp_path / "healed", quantized=[q], output=tmp_path / "report")
    rows = {t: (v, ok) for t, v, ok in targets(cfg, summary, None)}
    assert rows["merge keeps >= 90% of the safety specialist's refusal rate"] == ("107.1%", "met")
    label = " (healed: the merge, then its own safety DPO)"
    assert rows["merge keeps >= 90% of the safety specialist's refusal rate" + label] == ("87.7%", "**missed**")
    assert rows["merge keeps >= 90% of the domain specialist's QA" + label] == ("75.7%", "**missed**")
    assert rows["merge beats each parent on the combined score" + label] == ("+0.193 vs the better parent", "met")
    # against the healed merge (retention -10%), not the searched one (-8.4%)
    assert rows["quantized within 5% of unquantized on every task (healed-w8 vs healed; worst: retention)"] == \
        ("-10.0%", "**missed**")
    line = next(x for x in story(cfg, summary) if x.startswith("Merge, then heal"))
    assert "over-refusal 43.6% -> 17.3%, refusals 75.0% -> 61.4%, domain QA multiple choice 0.562 -> 0.583" in line
    assert line.endswith("weighted score 0.707 -> 0.733.")
    # the pairs the heal trained on: the merge's refusals of look-alikes, and its answers to everyday requests
    for name, metrics in (("op", {"prompts": 486, "answers": 486, "temperature": 0.0, "wrong_answers": 305,
                                  "mistake_rate": 0.6276, "mistakes": 305, "pairs": 101}),
                          ("rp", {"prompts": 130, "answers": 130, "temperature": 0.0, "wrong_answers": 128,
                                  "mistake_rate": 0.9846, "mistakes": 120, "pairs": 120, "refusals_skipped": 8})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"stage": "data/onpolicy", "metrics": metrics}))
    paired = ReportConfig(**{**cfg.model_dump(), "healed_onpolicy": tmp_path / "op", "healed_replay": tmp_path / "rp"})
    line = next(x for x in story(paired, summary) if x.startswith("Merge, then heal"))
    assert ("a safety DPO on the merge itself (the merge got 305 of 486 training prompts wrong by its scorers (63%); "
            "101 became DPO pairs; and 120 pairs of its 130 answers to everyday requests, each under the instruct "
            "model's own answer (128 differed, 8 refusals among them left out)): over-refusal 43.6%") in line
    no_heal = ReportConfig(**{**cfg.model_dump(), "healed": None})
    assert not any(label in t for t, _, _ in targets(no_heal, summary, None))
    assert not any(x.startswith("Merge, then heal") for x in story(no_heal, summary))


def test_report_narrates_each_onpolicy_stage_and_reads_each_as_an_input(tmp_path):
    """`onpolicy:` takes one path or a list: each stage gets its story line after the safety SFT's, and each is an
    input of the report of its own (a list passed as one path crashed the report stage)."""
    from shipit.ship.report import ReportConfig, report_inputs, story

    paths = []
    for name, metrics in (("op-look", {"prompts": 6, "answers": 6, "temperature": 0.0, "wrong_answers": 3,
                                       "mistake_rate": 0.5, "mistakes": 3, "pairs": 1}),
                          ("op-harm", {"prompts": 4, "answers": 8, "temperature": 0.8, "wrong_answers": 2,
                                       "mistake_rate": 0.25, "mistakes": 2, "pairs": 2})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"stage": "data/onpolicy", "metrics": metrics}))
        paths.append(tmp_path / name)
    summary = {"winner": "sft", "reason": "best score", "results": {"sft": {"score": 0.5, "safety": {
        "refusal_rate": 0.9, "over_refusal": 0.5, "score": 0.7}}}}
    cfg = ReportConfig(bench=tmp_path, safety_sft=tmp_path / "sft", onpolicy=paths, output=tmp_path / "report")
    lines = story(cfg, summary)
    at = next(i for i, x in enumerate(lines) if x.startswith("Safety after safety SFT (sft)"))
    assert lines[at + 1] == ("On-policy pairs (op-look): the model got 3 of 6 training prompts wrong by its scorers "
                             "(50%); 1 of those answers became the rejected side of DPO pairs against the reference "
                             "answers.")
    assert lines[at + 2].startswith("On-policy pairs (op-harm): the model's scorers rejected 2 of its 8 answers "
                                    "sampled at temperature 0.8 to 4 training prompts (25%; 2 distinct); 2 of those")
    assert {k: v for k, v in report_inputs(cfg).items() if k.startswith("onpolicy")} == \
        {"onpolicy": paths[0], "onpolicy_1": paths[1]}
    one = ReportConfig(**{**cfg.model_dump(), "onpolicy": paths[0]})
    assert one.onpolicy == paths[:1] and report_inputs(one)["onpolicy"] == paths[0] and "onpolicy_1" not in \
        report_inputs(one)


def test_bench_winner_resolves_where_the_output_is_now(tmp_path):
    """${bench:winner} names the winning candidate's path as the recipe resolves it today, not the path the bench
    recorded: after the output directory moved, the recorded one is gone."""
    from shipit.ship.runner import Recipe, _lookup, plan

    out = tmp_path / "moved"
    r = Recipe(out=out, stages={"a": {"kind": "base", "config": {}}, "b": {"kind": "base", "config": {}},
                                "bench": {"kind": "bench", "config": {"models": {"first": "${a}", "second": "${b}"}}}})
    (out / "bench").mkdir(parents=True)
    (out / "bench" / "results.json").write_text(json.dumps(
        {"passed": ["first", "second"], "results": {"first": {"score": 0.2}, "second": {"score": 0.7}}}))
    (out / "bench" / "manifest.json").write_text(json.dumps(
        {"config": {"models": {"first": "/old/place/a", "second": "/old/place/b"}}}))
    lookup = _lookup(plan(r, "recipe.yaml"), validating=False)
    assert lookup("bench", "winner") == out.resolve() / "b" and lookup("bench", "runner_up") == out.resolve() / "a"
