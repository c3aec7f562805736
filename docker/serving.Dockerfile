# Serving image: `docker run IMAGE serve` (the SageMaker contract): multi-model-server through
# sagemaker-inference on port 8080 (GET /ping, POST /invocations), model from /opt/ml/model.
#
# Build from the repository root (the build context must be the repo root, see .dockerignore):
#   docker build -f docker/serving.Dockerfile -t byoc-classifier-serving .
#   make build                       # picks docker, podman or buildah, whichever works
# Without registry access, first `make base-image` and build with BASE_IMAGE=localhost/debian-bookworm-minbase.
#
# Layer order: OS packages -> Python deps shared with the training image (torch, ~5 GB) ->
# Java + serving-only deps -> code. Editing code under container/ rebuilds only the last layers.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# ---- layers identical to docker/training.Dockerfile (so the two builds share them) ----
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

# The pins both images share (torch, torchvision, timm, numpy, pillow, setuptools).
# A CA bundle bind-mounted at /run/host-ca.crt (only done by `make build` with buildah/podman,
# for hosts whose HTTPS goes through a local CA) is used by pip; nothing of it stays in the image.
RUN set -eu; cd /tmp/requirements; \
    for f in training serving; do grep -Ev '^[[:space:]]*(#|$)' "requirements-$f.txt" | sort -u > "$f.pins"; done; \
    comm -12 training.pins serving.pins > common.txt; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r common.txt
# ---- end of the shared layers ----

# multi-model-server is a Java program: a headless JRE (the man1 folder is missing on -slim
# images and the JRE's postinst needs it). sagemaker-inference and MMS themselves come from PyPI.
RUN set -eu; \
    mkdir -p /usr/share/man/man1; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless; \
    rm -rf /var/lib/apt/lists/*; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r /tmp/requirements/requirements-serving.txt; \
    pip check; \
    java -version; \
    python -c 'import sagemaker_inference, timm, torchvision' && multi-model-server --help >/dev/null

# sagemaker-inference settings (see shared/sagemaker-reference.md); all can be overridden at run time.
ENV PYTHONPATH=/opt/ml/code \
    SAGEMAKER_BIND_TO_PORT=8080 \
    SAGEMAKER_MODEL_SERVER_TIMEOUT=60

COPY docker/entrypoint.sh /usr/local/bin/entrypoint
COPY container/ /opt/ml/code/
WORKDIR /opt/ml/code
EXPOSE 8080

# tini as PID 1 (exec form, so no shell swallows signals): on SIGTERM (endpoint scale-in) it signals
# the whole process group (-g): `serve`, whose sagemaker-inference handler stops MMS, MMS's Java
# frontend and its Python workers. Without -g, MMS 1.1's Python worker parent outlives the frontend.
# It also reaps zombies; -s keeps that working where it is not PID 1.
ENTRYPOINT ["/usr/bin/tini", "-s", "-g", "--", "/usr/local/bin/entrypoint"]
CMD ["serve"]
