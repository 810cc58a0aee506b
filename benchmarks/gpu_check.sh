#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (the `device` tool): every GPU recipe in train/ for a few bf16 steps
# on the real checkpoint (SmolLM2-135M-Instruct), after benchmarks/bench_bf16.py on CUDA. Figures: RESULTS.md.
#
# The machine has torch, transformers, accelerate and no registry; TRL, datasets, pydantic, gguf and peft travel as
# wheels (.whl). The checkpoint's GGUF (98 MB) is over one call's 64 MiB, so it travels in two halves, over two calls
# to the same warm machine (it stays warm 30 s after a call):
#   here:    bash benchmarks/gpu_check.sh pack
#   call 1:  carry [.whl, .gpu/a]   bash benchmarks/gpu_check.sh setup
#   call 2:  carry [.gpu/b]         bash benchmarks/gpu_check.sh run
# On a GPU machine that has the packages and the model already: bash benchmarks/gpu_check.sh run MODEL_DIR
set -uo pipefail
W=/tmp/shipit-gpu
GGUF="$HOME/.cache/shipit/sources/SmolLM2-135M-Instruct.Q4_1.gguf"
LOG="${OUT:-$W}/gpu_check.log"
STEPS="${STEPS:-5}"
D=src/shipit/demo/data
export PYTHONPATH="$PWD/src:/tmp/site" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY="${PY:-python3}"

pack() {  # here: the wheels the GPU image lacks, and the GGUF in two halves
  mkdir -p .whl .gpu/a .gpu/b
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
    gguf==0.19.0 peft==0.21.2
  local half=$(( ($(stat -c %s "$GGUF") + 1) / 2 ))
  head -c "$half" "$GGUF" > .gpu/a/part && tail -c +"$((half + 1))" "$GGUF" > .gpu/b/part
  sha256sum "$GGUF" | cut -d' ' -f1 > .gpu/b/sha256
  du -sh .whl .gpu/a .gpu/b
}

setup() {  # call 1: install the wheels, keep the first half, check the imports
  mkdir -p "$W" && cp .gpu/a/part "$W/a.part" || exit 1
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "
import torch, transformers, trl, peft, accelerate, datasets, pydantic, pyarrow, gguf
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())
print(*(f'{m.__name__} {m.__version__}' for m in (transformers, trl, peft, accelerate, datasets, pydantic, pyarrow)))
from shipit.train import cpt, sft, reward, dpo, ppo, grpo; from shipit.device import bf16_supported
print('shipit imports; bf16_supported', bf16_supported())"
}

stage() {  # stage name, then --set overrides; logs the seconds and the manifest's metrics
  local name=$1; shift
  local t0=$SECONDS
  echo "=== train $name: ${*}"
  timeout 300 "$PY" -m shipit train "$name" "train/$name-gpu-0.5b.yaml" --set model="$MODEL" \
    --set output="$W/runs/$name" "$@" 2>&1 | grep -v -E "it/s\]|s/it\]" | tail -n 15
  echo "=== $name: exit ${PIPESTATUS[0]} in $((SECONDS - t0)) s"
  "$PY" -c "
import json, sys; m = json.load(open('$W/runs/$name/manifest.json'))
print('metrics', json.dumps({k: v for k, v in m['metrics'].items() if not isinstance(v, (dict, list))})[:1500])" 2>&1
}

run() {  # call 2: the checkpoint, the bf16 benchmark, then every GPU recipe for $STEPS steps
  mkdir -p "$W/runs"
  MODEL="${1:-}"
  if [ -z "$MODEL" ]; then
    [ -f "$W/a.part" ] || { echo "no first half at $W/a.part: this is a fresh machine; run setup first"; exit 3; }
    cat "$W/a.part" .gpu/b/part > "$W/smol.gguf"
    [ "$(sha256sum "$W/smol.gguf" | cut -d' ' -f1)" = "$(cat .gpu/b/sha256)" ] || { echo "GGUF checksum differs"; exit 3; }
    MODEL="$W/smol"
    "$PY" -m shipit base import "$W/smol.gguf" --out "$MODEL" 2>&1 | tail -n 3
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  # the benchmark first: on 2026-12-01 it came last and the call's limit cut off its shipit-vs-TRL half
  echo "=== bench_bf16 on CUDA"
  timeout 420 "$PY" benchmarks/bench_bf16.py --model "$MODEL" ${BENCH_ARGS:---part all --repeats 1 --batch 32 --length 512}
  # the recipes' own batch, length and optimiser; only the steps are cut ($SHRINK: smaller steps, for a CPU try-out)
  local tr=(--set trainer.max_steps="$STEPS" --set trainer.warmup_steps=1 --set trainer.save_steps=1000 ${SHRINK:-})
  stage sft "${tr[@]}" --set eval_fraction=0
  stage cpt "${tr[@]}" \
    --set "domain=[{path: $D/domain_corpus.jsonl}]" --set "general=[{path: $D/general_train.jsonl}]" \
    --set domain_heldout=$D/domain_heldout.jsonl --set general_heldout=$D/general_heldout.jsonl
  stage reward "${tr[@]}" --set "datasets=[$D/preference_pairs.jsonl]"
  stage dpo "${tr[@]}" --set "datasets=[$D/preference_pairs.jsonl]"
  stage grpo "${tr[@]}" --set use_vllm=false --set "prompts=[$D/instructions.jsonl]"
  stage ppo --set ppo.iterations=2 --set ppo.save_every=1000 --set reward_model="$W/runs/reward" \
    --set "prompts=[$D/instructions.jsonl]"
  echo "=== done"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  pack) pack ;;
  setup) setup ;;
  run) mkdir -p "$(dirname "$LOG")"; run "$@" 2>&1 | tee "$LOG" ;;
  *) echo "usage: bash benchmarks/gpu_check.sh pack|setup|run [MODEL_DIR]"; exit 2 ;;
esac
