"""Atomic stage outputs, manifests, `shipit runs` and `shipit lineage`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shipit.cli import cli
from shipit.registry import find_runs, hash_path, lineage_lines, partial_dir, stage_output


def make_run(root, name, parents=(), metric=1.0):
    with stage_output(root / name, "test", {"name": name}, {f"p{i}": p for i, p in enumerate(parents)}) as run:
        (run.dir / "weights.bin").write_bytes(name.encode())
        run.metrics["score"] = metric
    return root / name


def test_manifest_records_config_inputs_versions_metrics(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "a"}\n')
    out = make_run(tmp_path, "a", [data], 0.5)
    m = json.loads((out / "manifest.json").read_text())
    assert m["stage"] == "test" and m["config"] == {"name": "a"} and m["metrics"] == {"score": 0.5}
    assert m["inputs"]["p0"]["sha256"] == hash_path(data) and m["parents"] == []
    assert "torch" in m["versions"] and "shipit" in m["versions"]
    assert m["sha256"] == hash_path(out) and m["wall_time_s"] >= 0
    assert not partial_dir(out).exists()


def test_crash_leaves_nothing_that_looks_complete(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with stage_output(out, "test", {}) as run:
            (run.dir / "half.bin").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not out.exists() and not partial_dir(out).exists()
    with pytest.raises(RuntimeError):
        with stage_output(out, "test", {}, keep_on_error=True) as run:
            (run.dir / "checkpoint").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not out.exists() and (partial_dir(out) / "checkpoint").exists()
    with stage_output(out, "test", {}, resume=True) as run:
        assert (run.dir / "checkpoint").exists()  # resume sees the checkpoint
    assert (out / "manifest.json").exists() and find_runs(tmp_path)[0][0] == out


def test_rewrite_replaces_previous_output_atomically(tmp_path):
    out = make_run(tmp_path, "a", metric=1.0)
    make_run(tmp_path, "a", metric=2.0)
    assert json.loads((out / "manifest.json").read_text())["metrics"]["score"] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_lineage_tree_and_cli(tmp_path):
    base = make_run(tmp_path, "base")
    a = make_run(tmp_path, "a", [base])
    b = make_run(tmp_path, "b", [base])
    merged = make_run(tmp_path, "merged", [a, b])
    assert lineage_lines(merged) == [
        "merged  [test]  score=1",
        "├── a  [test]  score=1",
        "│   └── base  [test]  score=1",
        "└── b  [test]  score=1",
        "    └── base  [test]  score=1",
    ]
    r = CliRunner().invoke(cli, ["lineage", str(merged)])
    assert r.exit_code == 0 and r.output.splitlines()[0] == "merged  [test]  score=1"
    r = CliRunner().invoke(cli, ["runs", str(tmp_path)])
    assert r.exit_code == 0 and [ln.split()[-2] for ln in r.output.splitlines()] == [
        str(p) for p in (base, a, b, merged)]


def test_failed_rewrite_keeps_previous_output(tmp_path):
    out = make_run(tmp_path, "a", metric=1.0)
    with pytest.raises(RuntimeError):
        with stage_output(out, "test", {}) as run:
            (run.dir / "weights.bin").write_bytes(b"half")
            raise RuntimeError("boom")
    assert json.loads((out / "manifest.json").read_text())["metrics"]["score"] == 1.0
    assert (out / "weights.bin").read_bytes() == b"a" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_lineage_survives_a_manifest_that_names_itself(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(
        {"name": "m", "stage": "merge", "parents": [str(tmp_path / "m")]}))
    assert lineage_lines(tmp_path / "m")[-1].endswith("(cycle: already shown above; its manifest names itself as an "
                                                      "ancestor)")
