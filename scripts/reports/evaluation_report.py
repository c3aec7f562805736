"""The evaluation report: one HTML page for a model on a class-per-folder data set, whether its
predictions came from the model directory or through an endpoint.

Summary (accuracy, top-k, log loss, macro F1, ECE), per-class precision/recall/F1, the confusion matrix
(sorted, with a close-up and the most confused pairs), the most confident mistakes as pictures, top-k
accuracy and calibration; from a model directory, each format it holds (torch, the accepted exports) with its
top-1 side by side. Next to the page: evaluation.json (the numbers) and predictions.csv (each image).
"""
from __future__ import annotations

from pathlib import Path

from classifier.artifact import atomic_write_json
from classifier.pages.figures import png

from . import evaluation_plots as plots
from .evaluation_data import Predictions, write_predictions_csv
from .metrics import Evaluation
from .page import write_page

FAILURES_SHOWN = 200  # images that could not be classified, listed on the page (all of them in evaluation.json)


def summary(p: Predictions, result: Evaluation, data: Path) -> dict:
    model = None
    if p.model:
        pre = p.model.get("preprocessing", {})
        model = f"{p.model.get('architecture')}, {pre.get('image_size')} px"
    known = {k: v for k, v in ((p.model or {}).get("metrics") or {}).items()
             if k in ("test_accuracy", "valid_accuracy")}
    return {"model": model, "data": str(data), "in_images": sum(1 for s in result.classes if s.support),
            "rate": result.images / max(p.seconds, 1e-9), "own": known}


def figures(p: Predictions, result: Evaluation) -> dict:
    """Each figure as a PNG data URI, None where there is nothing to draw."""
    return {
        "classes": png(plots.class_scores(result), crop=True),
        "confusion": png(plots.confusion(result, p), crop=True),
        "confusion_wide": len(result.classes) > plots.FITS_THE_PAGE,
        "close_up": png(plots.confusion_close_up(result, p), crop=True)
        if len(result.classes) > plots.CLOSE_UP_CLASSES else None,
        "mistakes": png(plots.misclassified(p), crop=True) if (p.predicted != p.labels).any() else None,
        "top_k": png(plots.top_k(result), crop=True) if result.top_k else None,
        "reliability": png(plots.reliability(result, p), crop=True),
    }


def formats(p: Predictions) -> list[dict]:
    """Top-1 of each format the model directory holds, on these images, beside the accuracy gate's verdict on the
    valid images (model_config.json's exports); empty for predictions from an endpoint or a batch transform."""
    rows = []
    for f in p.formats:
        gate = f.gate or {}
        gate_figures = gate.get("figures") or {}
        if f.gate is None:
            verdict = "the reference (model.pth)"
        elif gate.get("accepted"):
            shown = gate_figures
            verdict = "accepted" + (f" (valid: {shown['accuracy_change_points']:+.1f} points, same top-1 on "
                                    f"{shown['top1_agreement']:.1%})" if "top1_agreement" in shown else "")
        else:
            verdict = f"refused: {gate.get('reason')}"
        rows.append({"format": f.format, "served": f.served, "accuracy": f.accuracy, "agreement": f.agreement,
                     "images_per_second": f.images_per_second, "verdict": verdict})
    return rows


def as_json(p: Predictions, result: Evaluation) -> dict:
    return {
        "source": p.source, "images": result.images, "accuracy": result.accuracy,
        "top_k_accuracy": {str(k): v for k, v in result.top_k.items()}, "log_loss": result.log_loss,
        "macro_f1": result.macro_f1, "weighted_f1": result.weighted_f1, "ece": result.calibration.ece,
        "classes": [{"name": s.name, "precision": s.precision, "recall": s.recall, "f1": s.f1, "images": s.support,
                     "predicted": s.predicted} for s in result.classes],
        "class_names": p.classes, "confusion_matrix": result.confusion.tolist(),
        "most_confused": [{"true": p.classes[x.true], "predicted": p.classes[x.predicted], "images": x.count}
                          for x in result.pairs],
        "not_classified": [{"image": str(path), "reason": reason} for path, reason in p.failures],
        "formats": [{"format": f.format, "served": f.served, "accuracy": f.accuracy, "same_top1_as_torch": f.agreement,
                     "images_per_second": f.images_per_second, "gate": f.gate} for f in p.formats],
    }


def write(p: Predictions, result: Evaluation, data: Path, path: Path, title: str) -> Path:
    """The page and, next to it, evaluation.json and predictions.csv."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    numbers = path.with_name("evaluation.json")
    atomic_write_json(numbers, as_json(p, result))
    rows = write_predictions_csv(p, path.with_name("predictions.csv"))
    return write_page(path, "evaluation-report.html", title=f"Evaluation report: {title}", p=p, result=result,
                      summary=summary(p, result, data),
                      scores=sorted(result.classes, key=lambda s: (s.f1 if s.support else 2.0, s.name)),
                      figures=figures(p, result), formats=formats(p), files=[numbers.name, rows.name],
                      failures=p.failures[:FAILURES_SHOWN])
