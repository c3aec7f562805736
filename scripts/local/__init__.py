"""Local mode: the same jobs as on SageMaker, run on this machine (jobs.py is the local backend)."""

# The backbone local mode trains unless told otherwise: its weights install offline (the Makefile's LOCAL_BACKBONE).
LOCAL_BACKBONE = "efficientnet_lite0"
