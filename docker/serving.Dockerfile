# Serving image: `docker run IMAGE serve` (the SageMaker contract): nginx on port 8080 (GET /ping,
# POST /invocations) in front of multi-model-server with the sagemaker-inference handler, model from
# /opt/ml/model (see container/classifier/serving/serve.py).
#
# Build from the repository root (the build context must be the repo root, see .dockerignore):
#   docker build -f docker/serving.Dockerfile -t byoc-classifier-serving .
#   make build                       # picks docker, podman or buildah, whichever works
# Without registry access, first `make base-image` and build with BASE_IMAGE=localhost/debian-bookworm-minbase.
#
# Layer order: OS packages -> Python deps shared with the training image (torch, ~5 GB) ->
# Java, nginx + serving-only deps -> code (+ the /ping plugin jar). Editing code under container/
# rebuilds only the last layers.
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

# The pins both images share (torch, torchvision, timm, numpy, pillow, setuptools, openvino).
# A CA bundle bind-mounted at /run/host-ca.crt (only done by `make build` with buildah/podman,
# for hosts whose HTTPS goes through a local CA) is used by pip; nothing of it stays in the image.
RUN set -eu; cd /tmp/requirements; \
    for f in training serving; do grep -Ev '^[[:space:]]*(#|$)' "requirements-$f.txt" | sort -u > "$f.pins"; done; \
    comm -12 training.pins serving.pins > common.txt; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r common.txt
# ---- end of the shared layers ----

# multi-model-server is a Java program: a headless JRE (the man1 folder is missing on -slim
# images and the JRE's postinst needs it); nginx holds port 8080 in front of it (its packaged
# site config is removed: `serve` writes the one nginx reads; policy-rc.d keeps the package from
# starting nginx during the build). sagemaker-inference and MMS themselves come from PyPI.
RUN set -eu; \
    mkdir -p /usr/share/man/man1; \
    policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
      printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless nginx; \
    rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default $policy; \
    if [ -s /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi; \
    pip install -r /tmp/requirements/requirements-serving.txt; \
    pip check; \
    java -version; \
    nginx -v; \
    python -c 'import sys; sys.modules["openvino_telemetry"] = None; import sagemaker_inference, timm, torchvision, openvino' \
      && multi-model-server --help >/dev/null  # (openvino's telemetry off, as in classifier/export)

# sagemaker-inference settings (see shared/sagemaker-reference.md); all can be overridden at run time.
# CLASSIFIER_IMAGE tells docker/entrypoint.sh that this image serves (and cannot train);
# CLASSIFIER_MMS_PLUGIN_DIR is where the /ping plugin jar is built below.
ENV PYTHONPATH=/opt/ml/code \
    SAGEMAKER_BIND_TO_PORT=8080 \
    SAGEMAKER_MODEL_SERVER_TIMEOUT=60 \
    CLASSIFIER_IMAGE=serving \
    CLASSIFIER_MMS_PLUGIN_DIR=/usr/local/lib/classifier-mms-plugin

COPY docker/entrypoint.sh /usr/local/bin/entrypoint
COPY container/ /opt/ml/code/
WORKDIR /opt/ml/code
# The MMS /ping plugin (ReadyPing.java), compiled now, against this image's MMS and Java: `serve` only
# checks it and never compiles anything at start.
RUN python -m classifier.serving.mms_plugin "$CLASSIFIER_MMS_PLUGIN_DIR"
EXPOSE 8080

# tini as PID 1 (exec form, so no shell swallows signals): on SIGTERM (endpoint scale-in) it signals
# the process group (-g) of `serve`, which passes it on to the servers' own group (nginx, MMS's Java
# front end and its Python workers) and stops whatever of it is left. It also reaps zombies (the
# workers MMS leaves behind are reparented to it); -s keeps that working where it is not PID 1.
ENTRYPOINT ["/usr/bin/tini", "-s", "-g", "--", "/usr/local/bin/entrypoint"]
CMD ["serve"]
