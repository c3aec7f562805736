"""Scripts run from the repository root as `python -m scripts....`: local mode, AWS, data.

The training container's code (container/classifier) is imported, not copied: hyperparameter names,
the metric line format and the artifact format have one definition each.
"""
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_DIR = REPO_ROOT / "container"
DEFAULT_DATA = "data/fashion-mnist"  # the data set `make data` writes (the Makefile's DATA; relative to the root)
if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))
