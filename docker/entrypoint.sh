#!/bin/sh
# Entry point of both images. SageMaker runs `docker run IMAGE train` for training jobs and
# `docker run IMAGE serve` for endpoints; tini (PID 1) runs this script and forwards SIGTERM.
# Every branch uses exec, so the real program replaces this shell and receives the signal itself.
# CLASSIFIER_IMAGE (set by each Dockerfile: training or serving) says which of the two this image can do:
# the other one stops at once with a message that names the right image, instead of failing later
# (the SageMaker Python SDK's estimator.deploy() reuses the training image unless given image_uri).
set -e

case "${1:-}" in
    train)
        shift
        if [ "${CLASSIFIER_IMAGE:-}" = serving ]; then
            echo "train: this is the serving image (byoc-classifier-serving); it cannot train." \
                 "Training jobs run the training image, byoc-classifier-training (make train, or" \
                 "image_uri=<account>.dkr.ecr.<region>.amazonaws.com/byoc-classifier-training:<tag> in the SDK)." >&2
            exit 1
        fi
        # sagemaker-training's `train` console script (reads /opt/ml/input/config and runs
        # /opt/ml/code/$SAGEMAKER_PROGRAM as `python train.py --name value ...`), wrapped so that
        # SIGTERM reaches the training program and the toolkit waits for it to stop (see the file).
        exec python /usr/local/lib/byoc/entrypoint_train.py "$@"
        ;;
    serve)
        shift
        if [ "${CLASSIFIER_IMAGE:-}" = training ]; then
            echo "serve: this is the training image (byoc-classifier-training); it has no model server." \
                 "Endpoints run the serving image, byoc-classifier-serving, with the same tag: make deploy," \
                 "or with the SageMaker Python SDK estimator.deploy(..., image_uri=" \
                 "\"<account>.dkr.ecr.<region>.amazonaws.com/byoc-classifier-serving:<tag>\")" \
                 "(docs/aws.md)." >&2
            exit 1
        fi
        # nginx on port 8080 in front of multi-model-server (classifier.serving.serve); on SIGTERM it
        # stops both and MMS's workers.
        exec python -m classifier.serving.serve "$@"
        ;;
    "")
        echo "usage: IMAGE train | IMAGE serve | IMAGE COMMAND [ARGS...]" >&2
        exit 64
        ;;
    *)
        exec "$@"
        ;;
esac
