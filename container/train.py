"""SAGEMAKER_PROGRAM: the sagemaker-training toolkit's `train` runs `python train.py --name value ...`."""
import sys

from classifier.training import stopping

stopping.install()  # before torch is imported: a SIGTERM during start-up is a stop with its reason written

from classifier.training.main import main  # noqa: E402 - after the SIGTERM handler, on purpose

if __name__ == "__main__":
    sys.exit(main())
