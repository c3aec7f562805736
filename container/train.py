"""SAGEMAKER_PROGRAM: the sagemaker-training toolkit's `train` runs `python train.py --name value ...`."""
import sys

from classifier.training.main import main

if __name__ == "__main__":
    sys.exit(main())
