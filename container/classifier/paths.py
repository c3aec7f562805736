"""Where SageMaker puts things. `SAGEMAKER_BASE_DIR` moves `/opt/ml` (as it does for both toolkits)."""
import os
from pathlib import Path


def base_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def config_dir() -> Path:
    return base_dir() / "input" / "config"


def model_dir() -> Path:
    return Path(os.environ.get("SM_MODEL_DIR", base_dir() / "model"))


def output_dir() -> Path:
    return base_dir() / "output"


def output_data_dir() -> Path:
    return Path(os.environ.get("SM_OUTPUT_DATA_DIR", output_dir() / "data"))


def failure_file() -> Path:
    return output_dir() / "failure"


def checkpoint_dir() -> Path:
    """SageMaker syncs /opt/ml/checkpoints with CheckpointConfig.S3Uri; local jobs keep it in the job dir.

    On SageMaker (TRAINING_JOB_NAME set) each job uses its own subfolder: the trials of a tuning job may
    share one S3 URI, and a spot-interrupted job restarts under the same name, so it still resumes.
    """
    root = base_dir() / "checkpoints"
    job = os.environ.get("TRAINING_JOB_NAME", "").strip()
    return root / job if job and "/" not in job else root
