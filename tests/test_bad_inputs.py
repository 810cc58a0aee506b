"""The bad-input battery: every row is a mistake a new user makes (or a fault they meet), the exit code it must give,
the words its one-line message must hold, and what must be left on disk (no traceback, nothing that looks complete,
no user file lost). A new command gets its rows here.

Rows run in process through click's CliRunner; rows that need a read-only or full file system run `shipit` in a
private mount namespace (`unshare -rm`), so nothing is mounted for the rest of the machine and root's bypass of
file permissions does not hide the fault.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml
from click.testing import CliRunner

from shipit.cli import cli

REPO = Path(__file__).resolve().parent.parent


class Env:
    """Paths a row builds its command from: `tmp` is private to the row; models are shared and never modified."""

    def __init__(self, tmp: Path, models: dict[str, Path]):
        self.tmp, self.models = tmp, models
        self.base, self.a, self.b = models["base"], models["a"], models["b"]

    def write(self, name: str, text: str) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def merge_yaml(self, name: str = "merge.yaml", **extra) -> Path:
        cfg = {"merge_method": "linear", "dtype": "float32",
               "models": [{"model": str(self.a), "parameters": {"weight": 0.5}},
                          {"model": str(self.b), "parameters": {"weight": 0.5}}], **extra}
        return self.write(name, yaml.safe_dump(cfg, sort_keys=False))

    def user_dir(self, name: str = "mine") -> Path:
        """A directory the user made, with a file shipit must never delete."""
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "notes.txt").write_text("my notes")
        return d

    def copy_model(self, name: str = "model") -> Path:
        dst = self.tmp / name
        shutil.copytree(self.a, dst)
        return dst

    def truncated(self) -> Path:
        """A copy of model `a` whose weights file was cut short (an interrupted copy or download)."""
        dst = self.copy_model("truncated")
        w = dst / "model.safetensors"
        os.truncate(w, w.stat().st_size // 2)
        return dst

    def ab_yaml(self, **extra) -> Path:
        cfg = {"experiment": "x", "control": "control", "events": "events.sqlite",
               "arms": [{"name": "control", "weight": 50, "upstreams": ["http://127.0.0.1:9"]},
                        {"name": "cand", "weight": 50, "upstreams": ["http://127.0.0.1:9"]}], **extra}
        return self.write("ab.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def cai_yaml(self) -> Path:
        con = self.write("constitution.yaml", "principles:\n  - name: harm\n    critique_requst: Is it harmful?\n"
                                              "    revision_request: Make it harmless.\n")
        prompts = self.write("p.jsonl", json.dumps({"prompt": "hi"}) + "\n")
        cfg = {"generator": {"backend": "hf", "model": str(self.base)}, "constitution": str(con),
               "prompts": [{"path": str(prompts)}], "output": str(self.tmp / "o")}
        return self.write("cai.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def onpolicy_yaml(self, rows: list[dict], top: dict | None = None, **ref) -> Path:
        refs = self.write("refs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        cfg = {"generator": {"backend": "hf", "model": str(self.base)},
               "references": [{"path": str(refs), "field": "messages", **ref}],
               "scorers": [{"name": "length"}], "output": str(self.tmp / "o"), **(top or {})}
        return self.write("onpolicy.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def recipe(self, **merge_extra) -> Path:
        merge = yaml.safe_load(self.merge_yaml("stage-merge.yaml", **merge_extra).read_text())
        cfg = {"name": "r", "out": str(self.tmp / "run"), "stages": {"merged": {"kind": "merge", "config": merge}}}
        return self.write("recipe.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def sft_yaml(self, output: Path, **extra) -> Path:
        data = self.write("d.jsonl", "".join(json.dumps({"text": f"row {i} of text"}) + "\n" for i in range(8)))
        cfg = {"model": str(self.base), "output": str(output), "datasets": [{"path": str(data)}],
               "trainer": {"max_steps": 1, "save_steps": 1, "per_device_train_batch_size": 2}, **extra}
        return self.write("sft.yaml", yaml.safe_dump(cfg, sort_keys=False))


@dataclass
class Row:
    """args(env) -> command line; exit code; words the last line must hold; `out` (relative to tmp) must not look
    complete; `check(env)` asserts what must be left; `fs` runs it with that path read-only ("ro") or full."""

    id: str
    args: Callable[[Env], list[str]]
    exit: int
    words: tuple[str, ...]
    out: str | None = None
    check: Callable[[Env], None] | None = None
    fs: tuple[str, str] | None = None  # ("ro" | "full", path relative to tmp)
    setup: Callable[[Env], None] | None = None


def notes_kept(d: str = "mine") -> Callable[[Env], None]:
    def check(e: Env) -> None:
        assert (e.tmp / d / "notes.txt").read_text() == "my notes", "a user's file was lost"
    return check


def model_unchanged(e: Env) -> None:
    from shipit.registry import hash_path

    assert hash_path(e.tmp / "model") == e.models["a_hash"], "the input model was modified"


ROWS = [
    # --- never lose a user's data
    Row("merge-out-user-dir", lambda e: ["merge", str(e.merge_yaml()), "--out", str(e.user_dir())], 2,
        ("already exists", "not written by shipit", "--force"), "mine", notes_kept()),
    Row("merge-out-user-file-in-shipit-output",
        lambda e: ["merge", str(e.merge_yaml()), "--out", str(e.tmp / "prev")], 2,
        ("holds files shipit did not write", "notes.txt", "--force"), None, notes_kept("prev"),
        setup=lambda e: (CliRunner().invoke(cli, ["merge", str(e.merge_yaml("m0.yaml")), "--out", str(e.tmp / "prev")]),
                         (e.tmp / "prev" / "notes.txt").write_text("my notes"))),
    Row("merge-out-is-input", lambda e: ["merge", str(e.merge_yaml(models=[
        {"model": str(e.copy_model()), "parameters": {"weight": 0.5}},
        {"model": str(e.b), "parameters": {"weight": 0.5}}])), "--out", str(e.tmp / "model"), "--force"], 2,
        ("is the input", "overwrite its source"), None, model_unchanged),
    Row("merge-out-inside-input", lambda e: ["merge", str(e.merge_yaml(models=[
        {"model": str(e.copy_model()), "parameters": {"weight": 0.5}},
        {"model": str(e.b), "parameters": {"weight": 0.5}}])), "--out", str(e.tmp / "model" / "merged")], 2,
        ("is inside the input",), "model/merged", model_unchanged),
    Row("merge-out-contains-input", lambda e: ["merge", str(e.merge_yaml(models=[
        {"model": str(e.copy_model("models/a")), "parameters": {"weight": 0.5}},
        {"model": str(e.b), "parameters": {"weight": 0.5}}])), "--out", str(e.tmp / "models"), "--force"], 2,
        ("contains the input", "would delete"), None,
        lambda e: (e.tmp / "models" / "a" / "config.json").is_file() or pytest.fail("input deleted")),
    Row("quantize-out-user-dir", lambda e: ["quantize", "w8a8", str(e.a), "--out", str(e.user_dir())], 2,
        ("already exists", "--force"), "mine", notes_kept()),
    Row("train-output-user-dir", lambda e: ["train", "sft", str(e.sft_yaml(e.user_dir()))], 2,
        ("already exists", "--force"), "mine", notes_kept()),
    Row("merge-out-user-dir-forced", lambda e: ["merge", str(e.merge_yaml()), "--out", str(e.user_dir()), "--force"],
        0, ("merged:",), None,
        lambda e: (e.tmp / "mine" / "manifest.json").is_file() and not (e.tmp / "mine" / "notes.txt").exists()
        or pytest.fail("--force did not replace the directory")),
    Row("ship-stage-out-user-dir", lambda e: ["ship", str(e.recipe())], 2, ("already exists", "--force"),
        "run/merged", notes_kept("run/merged"), setup=lambda e: e.user_dir("run/merged")),
    Row("ship-stage-out-user-dir-forced", lambda e: ["ship", str(e.recipe()), "--force"], 0, ("1 stages",), None,
        lambda e: (e.tmp / "run" / "merged" / "manifest.json").is_file() or pytest.fail("not replaced"),
        setup=lambda e: e.user_dir("run/merged")),
    Row("ship-merge-unknown-parameter", lambda e: ["ship", str(e.recipe(parameters={"normalise": True}))], 2,
        ("stage 'merged': field 'parameters.normalise'", "did you mean 'normalize'?"), "run/merged"),
    Row("lineage-missing-path", lambda e: ["lineage", str(e.tmp / "nope")], 2, ("path not found", "nope")),
    Row("lineage-cycle", lambda e: ["lineage", str(e.tmp / "self")], 0, ("cycle",), setup=lambda e: e.write(
        "self/manifest.json", json.dumps({"name": "self", "stage": "merge", "parents": [str(e.tmp / "self")]}))),
    # --- one line instead of a traceback
    Row("merge-truncated-safetensors", lambda e: ["merge", str(e.merge_yaml(models=[
        {"model": str(e.truncated()), "parameters": {"weight": 0.5}},
        {"model": str(e.b), "parameters": {"weight": 0.5}}])), "--out", str(e.tmp / "o")], 2,
        ("model.safetensors is truncated", "copy or download it again"), "o"),
    Row("quantize-truncated-safetensors", lambda e: ["quantize", "w8a8", str(e.truncated()), "--out",
                                                      str(e.tmp / "o")], 2, ("is truncated",), "o"),
    Row("merge-duplicate-inputs", lambda e: ["merge", str(e.merge_yaml(models=[
        {"model": str(e.a), "parameters": {"weight": 0.5}}, {"model": str(e.a), "parameters": {"weight": 0.5}}])),
        "--out", str(e.tmp / "o")], 2, ("merge.yaml:7: field 'models[1].model'", "listed twice"), "o"),
    Row("slerp-t-not-a-number", lambda e: ["merge", str(e.merge_yaml(
        merge_method="slerp", base_model=str(e.a), parameters={"t": "abc"},
        models=[{"model": str(e.a)}, {"model": str(e.b)}])), "--out", str(e.tmp / "o")], 2,
        ("field 'parameters.t'", "must be a float", "'abc'"), "o"),
    Row("train-set-bad-yaml", lambda e: ["train", "sft", str(e.sft_yaml(e.tmp / "o")), "--set",
                                         "trainer.max_steps=[1"], 2,
        ("--set trainer.max_steps=[1", "not valid YAML", "quote it"), "o"),
    Row("ship-set-bad-yaml", lambda e: ["ship", str(REPO / "src/shipit/demo/recipe.yaml"), "--set", "out={x"], 2,
        ("--set out={x", "not valid YAML"), "o"),
    Row("merge-out-read-only-parent", lambda e: ["merge", str(e.merge_yaml()), "--out", str(e.tmp / "ro" / "o")], 2,
        ("read-only file system", "ro"), "ro/o", fs=("ro", "ro")),
    Row("quantize-out-read-only-dir", lambda e: ["quantize", "w8a8", str(e.a), "--out", str(e.tmp / "ro")], 2,
        ("read-only",), "ro", fs=("ro", "ro")),
    Row("merge-disk-full", lambda e: ["merge", str(e.merge_yaml()), "--out", str(e.tmp / "full" / "o")], 2,
        ("not enough disk space", "MB are free"), "full/o", fs=("full", "full")),
    Row("quantize-disk-full-mid-work", lambda e: ["quantize", "w8a8", str(e.a), "--out", str(e.tmp / "full" / "o")],
        2, ("disk full",), "full/o", fs=("full", "full")),
    Row("train-disk-full-mid-work", lambda e: ["train", "sft", str(e.sft_yaml(e.tmp / "full" / "o"))], 2,
        ("disk full",), "full/o", fs=("full", "full")),
    # --- silently accepted before
    Row("merge-unknown-parameter", lambda e: ["merge", str(e.merge_yaml(parameters={"normalise": True})),
                                              "--out", str(e.tmp / "o")], 2,
        ("unknown parameter 'normalise'", "did you mean 'normalize'?"), "o"),
    Row("merge-unknown-top-key", lambda e: ["merge", str(e.merge_yaml(tokenizer_sorce="base")),
                                            "--out", str(e.tmp / "o")], 2,
        ("unknown key 'tokenizer_sorce'", "did you mean 'tokenizer_source'?"), "o"),
    Row("ab-status-missing-store", lambda e: ["ab", "status", str(e.ab_yaml(events="evnts.sqlite"))], 2,
        ("event store not found", "evnts.sqlite"), None,
        lambda e: not (e.tmp / "evnts.sqlite").exists() or pytest.fail("a store was created")),
    # --- messages that pointed the wrong way
    Row("set-weights-colon", lambda e: ["ab", "set-weights", str(e.ab_yaml()), "control:90"], 2,
        ("expected ARM=WEIGHT", "control=90")),
    Row("jsonl-unterminated-string", lambda e: ["train", "sft", str(e.sft_yaml(e.tmp / "o", datasets=[
        {"path": str(e.write("bad.jsonl", '{"text": "ok"}\n{"text": "abc\n'))}]))], 2,
        ("bad.jsonl:2", "Unterminated string starting at column 10"), "o"),
    Row("constitution-key-typo", lambda e: ["data", "cai", str(e.cai_yaml())], 2,
        ("constitution.yaml:3: field 'principles.0.critique_requst'", "did you mean 'critique_request'?"), "o"),
    Row("onpolicy-reference-without-answer", lambda e: ["data", "onpolicy", str(e.onpolicy_yaml([
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]},
        {"messages": [{"role": "user", "content": "no answer here"}]}]))], 2,
        ("refs.jsonl:2: field 'messages' needs an assistant turn", "chosen answer"), "o"),
    Row("onpolicy-references-of-plain-prompts", lambda e: ["data", "onpolicy", str(e.onpolicy_yaml(
        [{"prompt": "hi"}], field="prompt"))], 2, ("field must be 'messages'", "not 'prompt'"), "o"),
    Row("onpolicy-greedy-samples", lambda e: ["data", "onpolicy", str(e.onpolicy_yaml(
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]}],
        top={"samples": 4}))], 2, ("onpolicy.yaml", "samples: 4 greedy answers", "set temperature above 0"), "o"),
    Row("experiment-pmi-verdict-on-an-endpoint", lambda e: ["ab", "simulate", str(e.write("exp.yaml", yaml.safe_dump({
        "experiment": "x", "arms": {"a": str(e.a), "b": str(e.b)}, "output": str(e.tmp / "o"),
        "llm_judge": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model_name": "m"},
        "llm_verdict": "pmi"})))], 2, ("exp.yaml:", "field 'llm_verdict'", "needs judge backend 'hf'"), "o"),
    Row("set-typo-not-blamed-on-file", lambda e: ["train", "sft", str(e.sft_yaml(e.tmp / "o")), "--set",
                                                  "trainer.max_step=3"], 2,
        ("--set: field 'trainer.max_step'", "did you mean 'max_steps'?"), "o"),
    Row("set-long-value-truncated", lambda e: ["train", "sft", str(e.sft_yaml(e.tmp / "o")), "--set",
                                               "trainer.learning_rate=" + "x" * 5000], 2,
        ("--set: field 'trainer.learning_rate'", "(5002 characters)"), "o"),
]


def _last_line(text: str) -> str:
    """The error line (progress bars end without a newline, and a trainer's bar may close after it), else the
    last line."""
    lines = [ln for ln in re.split(r"[\r\n]", text) if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) <= 1, f"more than one error line: {errors}"
    return errors[-1] if errors else lines[-1] if lines else ""


def _unshare_ok() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


def _run_in_fs(row: Row, e: Env, args: list[str]) -> tuple[int, str]:
    """Run `shipit ARGS` with one path read-only or on a tiny full file system, in a private mount namespace."""
    if not _unshare_ok():
        pytest.skip("needs `unshare -rm` (user and mount namespaces) to make a read-only or full file system")
    kind, rel = row.fs
    target = e.tmp / rel
    target.mkdir(parents=True, exist_ok=True)
    mount = (f"mount --bind {target} {target} && mount -o remount,bind,ro {target}" if kind == "ro"
             else f"mount -t tmpfs -o size=64k tmpfs {target} && head -c 60000 /dev/zero > {target}/filler")
    import shipit

    env = {**os.environ, "PYTHONPATH": str(Path(shipit.__file__).resolve().parents[1])}  # the shipit under test
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f'{mount} && exec "$@"', "sh", sys.executable, "-m", "shipit",
                        *args], capture_output=True, text=True, env=env, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def models(tiny_base, tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import load_file, save_file
    import torch

    from shipit.registry import hash_path

    root = tmp_path_factory.mktemp("bad-inputs")
    out = {"base": tiny_base}
    for name, seed in (("a", 0), ("b", 1)):
        dst = root / name
        shutil.copytree(tiny_base, dst)
        (dst / "manifest.json").unlink()
        g = torch.Generator().manual_seed(seed)
        w = load_file(dst / "model.safetensors")
        save_file({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in w.items()},
                  dst / "model.safetensors", metadata={"format": "pt"})
        out[name] = dst
    out["a_hash"] = hash_path(out["a"])
    return out


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_bad_input(row: Row, models, tmp_path, monkeypatch):
    e = Env(tmp_path, models)
    monkeypatch.chdir(tmp_path)
    if row.setup:
        row.setup(e)
    args = row.args(e)
    if row.fs:
        code, text = _run_in_fs(row, e, args)
    else:
        r = CliRunner().invoke(cli, args)
        code, text = r.exit_code, r.output  # click >= 8.2: stdout and stderr, interleaved
        assert r.exception is None or isinstance(r.exception, SystemExit), f"uncaught {r.exception!r}\n{text}"
    assert "Traceback" not in text, text
    assert code == row.exit, text
    last = _last_line(text)
    if row.exit == 2:
        assert last.startswith("error: ") and len(last) < 600, text
    for w in row.words:
        assert w in last, f"{w!r} not in {last!r}"
    if row.out:
        out = tmp_path / row.out
        assert not (out / "manifest.json").exists(), "an output that looks complete was left"
        partial = out.parent / f".{out.name}.partial"
        assert not (partial / "manifest.json").exists(), "a partial output holding a manifest was left"
    if row.check:
        row.check(e)


def test_debug_shows_the_traceback_and_keeps_exit_code_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "shipit", "--debug", "lineage", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" in r.stderr and "UserError" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: lineage: path not found: {tmp_path / 'nope'}"
