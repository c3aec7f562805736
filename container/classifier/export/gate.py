"""The accuracy gate: an exported format is served only when, on the valid channel, it answers as the
PyTorch model it was made from.

- fp32: every probability within `FP32_TOLERANCE` of PyTorch's (absolute, per class and image): the same
  network in the same precision, so only the order of floating-point operations may differ. Measured on
  this project's models, the largest difference is ~1e-7 (docs/measurements.md); 1e-4 leaves room for other
  CPUs' kernels and still catches a wrong conversion (a missing normalisation moves probabilities by 0.1+).
- int8: top-1 accuracy at most `INT8_MAX_DROP_POINTS` below PyTorch's (a gain is fine) and the same top-1
  class as PyTorch for at least `INT8_MIN_AGREEMENT` of the images: quantisation may move probabilities,
  but not the answers.
The figures and, for a refused format, the reason go into model_config.json (`exports`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FP32_TOLERANCE = 1e-4
INT8_MAX_DROP_POINTS = 0.5
INT8_MIN_AGREEMENT = 0.98


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    figures: dict  # accuracy, accuracy_change_points, top1_agreement, max_probability_difference, images
    reason: str | None = None  # why it was refused


def figures(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> dict:
    """A format's answers on labelled images beside PyTorch's (probabilities, images x classes)."""
    right = int((candidate.argmax(axis=1) == labels).sum())
    reference_right = int((reference.argmax(axis=1) == labels).sum())
    return {
        "images": int(len(labels)),
        "accuracy": right / len(labels),
        "accuracy_change_points": 100 * (right - reference_right) / len(labels),  # from counts: 1 of 200 is 0.5
        "top1_agreement": float((candidate.argmax(axis=1) == reference.argmax(axis=1)).mean()),
        "max_probability_difference": float(np.abs(candidate - reference).max()),
    }


def judge_fp32(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> Verdict:
    measured = figures(labels, reference, candidate)
    difference = measured["max_probability_difference"]
    if difference > FP32_TOLERANCE:
        return Verdict(False, measured, f"its probabilities differ from PyTorch's by up to {difference:.2g} on the "
                                        f"valid images (tolerance {FP32_TOLERANCE:g})")
    return Verdict(True, measured)


def judge_int8(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> Verdict:
    measured = figures(labels, reference, candidate)
    problems = []
    if measured["accuracy_change_points"] < -INT8_MAX_DROP_POINTS:
        problems.append(f"top-1 accuracy {100 * measured['accuracy']:.1f} % is "
                        f"{-measured['accuracy_change_points']:.1f} points below PyTorch's (at most "
                        f"{INT8_MAX_DROP_POINTS:g} allowed)")
    if measured["top1_agreement"] < INT8_MIN_AGREEMENT:
        problems.append(f"it agrees with PyTorch's top-1 on {100 * measured['top1_agreement']:.1f} % of the valid "
                        f"images (at least {100 * INT8_MIN_AGREEMENT:g} % needed)")
    if problems:
        return Verdict(False, measured, "; ".join(problems))
    return Verdict(True, measured)
