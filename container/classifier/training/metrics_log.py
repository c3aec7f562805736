"""The metric lines of the training log: a fixed format that SageMaker MetricDefinitions regexes read.

[metrics] epoch=3 train_loss=0.412300 valid_loss=0.399100 valid_accuracy=0.875000 epoch_time=12.31 images_per_sec=201.3
[metrics] best_epoch=2 valid_loss=0.398000 valid_accuracy=0.880000
[metrics] test_loss=0.401200 test_accuracy=0.870000

The `best_epoch` line comes last of the valid_* values: the final value a regex reads (SageMaker's
final objective metric) is the one of the epoch whose model is saved. The regexes live in
config/job.yaml (metric_definitions); tests check that they read these lines.
"""

PREFIX = "[metrics]"


def epoch_line(epoch: int, train_loss: float, valid_loss: float, valid_accuracy: float,
               epoch_time: float, images_per_sec: float) -> str:
    return (f"{PREFIX} epoch={epoch} train_loss={train_loss:.6f} valid_loss={valid_loss:.6f} "
            f"valid_accuracy={valid_accuracy:.6f} epoch_time={epoch_time:.2f} images_per_sec={images_per_sec:.1f}")


def best_line(best_epoch: int, valid_loss: float, valid_accuracy: float) -> str:
    return f"{PREFIX} best_epoch={best_epoch} valid_loss={valid_loss:.6f} valid_accuracy={valid_accuracy:.6f}"


def test_line(test_loss: float, test_accuracy: float) -> str:
    return f"{PREFIX} test_loss={test_loss:.6f} test_accuracy={test_accuracy:.6f}"
