"""The metric lines of the training log: a fixed format that SageMaker MetricDefinitions regexes read.

[metrics] epoch=3 train_loss=0.412300 valid_loss=0.399100 valid_accuracy=0.875000 best_valid_loss=0.398000 \
          epoch_time=12.31 images_per_sec=201.3                    (one line)
[metrics] best_epoch=2 valid_loss=0.398000 valid_accuracy=0.880000
[metrics] test_loss=0.401200 test_accuracy=0.870000

`best_valid_loss` (the tuning objective) is the lowest valid_loss so far: the loss of the model the job
keeps if it ends after this epoch. It appears once per epoch and nowhere else, so Hyperband and early
stopping, which use every value the objective's regex finds, get exactly one value per epoch, and the last
one (SageMaker's final objective metric) is the saved model's. The `best_epoch` line repeats the best
epoch's valid_* values after the last epoch, so the final valid_loss and valid_accuracy describe the saved
model too. The regexes live in config/job.yaml (metric_definitions); tests check that they read these lines.
"""

PREFIX = "[metrics]"


def epoch_line(epoch: int, train_loss: float, valid_loss: float, valid_accuracy: float,
               epoch_time: float, images_per_sec: float, *, best_valid_loss: float) -> str:
    return (f"{PREFIX} epoch={epoch} train_loss={train_loss:.6f} valid_loss={valid_loss:.6f} "
            f"valid_accuracy={valid_accuracy:.6f} best_valid_loss={best_valid_loss:.6f} "
            f"epoch_time={epoch_time:.2f} images_per_sec={images_per_sec:.1f}")


def best_line(best_epoch: int, valid_loss: float, valid_accuracy: float) -> str:
    return f"{PREFIX} best_epoch={best_epoch} valid_loss={valid_loss:.6f} valid_accuracy={valid_accuracy:.6f}"


def test_line(test_loss: float, test_accuracy: float) -> str:
    return f"{PREFIX} test_loss={test_loss:.6f} test_accuracy={test_accuracy:.6f}"
