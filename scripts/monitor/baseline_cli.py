"""`make monitor-baseline`: the monitor's baseline for a model that has none (trained before the monitor existed,
or stopped by SIGTERM before its end), computed as its training job computes it (classifier.monitoring.baseline)
on the valid images of its data set, and saved in its model directory.

    python -m scripts.monitor.baseline_cli --model <job | model dir> --data <data set | its valid/ folder>
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier.artifact import ArtifactError
from classifier.monitoring.baseline import BaselineError
from classifier.training.data import DataError, scan_channel
from scripts.local import jobs


def valid_folder(data: str) -> Path:
    """DATA=: a data set (its valid/ folder) or the class-per-folder folder itself."""
    folder = Path(data)
    return folder / "valid" if (folder / "valid").is_dir() else folder


def write(model: str, data: str) -> Path:
    from classifier.artifact import load_artifact
    from classifier.monitoring import baseline

    if Path(model).is_file():
        raise jobs.JobError(f"MODEL={model} is a file: give the model directory (or local job) the baseline is "
                              "written into (unpack a model.tar.gz first)")
    directory = jobs.resolve_model(model)
    network, config, preprocessing = load_artifact(directory)
    channel = scan_channel("valid", valid_folder(data), list(config["classes"]))
    result = baseline.write(directory, network, channel, preprocessing, what=f"{channel.root}")
    print(f"Monitor baseline: {result.source}, {result.seconds:.1f} s -> {directory / baseline.BASELINE_FILE}")
    return directory / baseline.BASELINE_FILE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="local job name or directory, or model directory")
    parser.add_argument("--data", required=True, help="the data set the model was trained on (its valid/), or a "
                                                      "class-per-folder folder of images like its valid ones")
    args = parser.parse_args(argv)
    try:
        write(args.model, args.data)
    except (jobs.JobError, DataError, BaselineError, ArtifactError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
