#!/bin/sh
# Entry point of both images. SageMaker runs `docker run IMAGE train` for training jobs and
# `docker run IMAGE serve` for endpoints; tini (PID 1) runs this script and forwards SIGTERM.
# Every branch uses exec, so the real program replaces this shell and receives the signal itself.
set -e

case "${1:-}" in
    train)
        shift
        # sagemaker-training's `train` console script (reads /opt/ml/input/config and runs
        # /opt/ml/code/$SAGEMAKER_PROGRAM as `python train.py --name value ...`), wrapped so that
        # SIGTERM reaches the training program and the toolkit waits for it to stop (see the file).
        exec python /usr/local/lib/byoc/entrypoint_train.py "$@"
        ;;
    serve)
        shift
        # multi-model-server through sagemaker-inference on port 8080; its SIGTERM handler stops MMS.
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
