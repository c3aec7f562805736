"""The training job: `main.run` is what `container/train.py` (SAGEMAKER_PROGRAM) calls."""
