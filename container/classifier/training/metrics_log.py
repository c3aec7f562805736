"""The metric lines of the training log: a fixed format that SageMaker MetricDefinitions regexes read.

[metrics] epoch=3 train_loss=0.412300 valid_loss=0.399100 valid_accuracy=0.875000 valid_macro_f1=0.871000 \
          best_valid_loss=0.398000 epoch_time=12.31 images_per_sec=201.3                    (one line)
[metrics] best_epoch=2 valid_loss=0.398000 valid_accuracy=0.880000 valid_macro_f1=0.877000
[metrics] test_loss=0.401200 test_accuracy=0.870000 test_macro_f1=0.866000

`best_valid_loss` (the tuning objective) is the lowest valid_loss so far: the loss of the model the job
keeps if it ends after this epoch. It appears once per epoch and nowhere else, so Hyperband and early
stopping, which use every value the objective's regex finds, get exactly one value per epoch, and the last
one (SageMaker's final objective metric) is the saved model's. The `best_epoch` line repeats the best
epoch's valid_* values after the last epoch, so the final valid_loss and valid_accuracy describe the saved
model too. The regexes live in config/job.yaml (metric_definitions); tests check that they read these lines.
"""

PREFIX = "[metrics]"


def epoch_line(metrics: dict, best_valid_loss: float) -> str:
    """`metrics`: the epoch's (main.py): epoch, train_loss, valid_loss, valid_accuracy, valid_macro_f1,
    epoch_time, images_per_sec."""
    m = metrics
    return (f"{PREFIX} epoch={m['epoch']} train_loss={m['train_loss']:.6f} valid_loss={m['valid_loss']:.6f} "
            f"valid_accuracy={m['valid_accuracy']:.6f} valid_macro_f1={m['valid_macro_f1']:.6f} "
            f"best_valid_loss={best_valid_loss:.6f} epoch_time={m['epoch_time']:.2f} "
            f"images_per_sec={m['images_per_sec']:.1f}")


def best_line(best_epoch: int, best: dict) -> str:
    """`best`: the best epoch's metrics."""
    return (f"{PREFIX} best_epoch={best_epoch} valid_loss={best['valid_loss']:.6f} "
            f"valid_accuracy={best['valid_accuracy']:.6f} valid_macro_f1={best['valid_macro_f1']:.6f}")


def test_line(test_loss: float, test_accuracy: float, test_macro_f1: float) -> str:
    return f"{PREFIX} test_loss={test_loss:.6f} test_accuracy={test_accuracy:.6f} test_macro_f1={test_macro_f1:.6f}"
