"""The evaluation report: one HTML page for a model on a class-per-folder data set, whether its
predictions came from the model directory or through an endpoint.

Summary (accuracy, top-k, log loss, macro F1, ECE), per-class precision/recall/F1, the confusion matrix
(sorted, with a close-up and the most confused pairs), the most confident mistakes as pictures, top-k
accuracy and calibration. Next to the page: evaluation.json (the numbers) and predictions.csv (each image).
"""
from __future__ import annotations

from pathlib import Path

from classifier.artifact import atomic_write_json

from . import evaluation_plots as plots
from .evaluation_data import Predictions, write_predictions_csv
from .metrics import Evaluation
from .page import esc, fmt_number, fmt_seconds, html_page, note, png, section, table, write_page

NAV = [("summary", "Summary"), ("formats", "Formats"), ("classes", "Per class"), ("confusion", "Confusion"),
       ("mistakes", "Mistakes"), ("topk", "Top-k"), ("calibration", "Calibration"), ("files", "Files")]


def _pct(value: float) -> str:
    return f"{value:.1%}"


def summary_section(p: Predictions, result: Evaluation, data: Path) -> str:
    rows = [("Predictions from", esc(p.source)), ("Images", esc(f"{result.images} from {data}")),
            ("Classes", esc(f"{len(p.classes)} in the model, {sum(1 for s in result.classes if s.support)} in "
                            "the images")),
            ("Accuracy", f"<b>{_pct(result.accuracy)}</b>"),
            ("Top-k accuracy", esc(", ".join(f"top-{k} {_pct(v)}" for k, v in result.top_k.items()) or "–")),
            ("Macro / weighted F1", esc(f"{result.macro_f1:.3f} / {result.weighted_f1:.3f}")),
            ("Log loss (mean NLL)", esc(f"{result.log_loss:.4f}")),
            ("Expected calibration error", esc(f"{result.calibration.ece:.3f} (top-1 probability, "
                                               f"{len(result.calibration.counts)} bins)")),
            ("Time", esc(f"{fmt_seconds(p.seconds)} ({result.images / max(p.seconds, 1e-9):.1f} images/s)"))]
    if p.model:
        pre = p.model.get("preprocessing", {})
        rows.insert(1, ("Model", esc(f"{p.model.get('architecture')}, {pre.get('image_size')} px")))
        known = {k: v for k, v in (p.model.get("metrics") or {}).items() if k in ("test_accuracy", "valid_accuracy")}
        if known:
            rows.append(("The training job's own", esc(", ".join(f"{k} {fmt_number(v)}" for k, v in known.items()))))
    if p.failures:
        rows.append(("Not classified", esc(f"{len(p.failures)} image(s), listed under Files")))
    return section("summary", "Summary", table(None, rows))


def formats_section(p: Predictions) -> str:
    """Top-1 of each format the model directory holds, on these images, beside the accuracy gate's verdict on the
    valid images (model_config.json's exports)."""
    if not p.formats:
        return section("formats", "Formats", note("Predictions from an endpoint or a batch transform: the format "
                                                  "is the endpoint's (its log says which)."))
    rows = []
    for f in p.formats:
        gate = f.gate or {}
        if f.gate is None:
            verdict = "the reference (model.pth)"
        elif gate.get("accepted"):
            figures = gate.get("figures") or {}
            verdict = "accepted" + (f" (valid: {figures['accuracy_change_points']:+.1f} points, same top-1 on "
                                    f"{figures['top1_agreement']:.1%})" if "top1_agreement" in figures else "")
        else:
            verdict = f"refused: {gate.get('reason')}"
        measured = f.accuracy is not None
        rows.append([f"<b>{esc(f.format)}</b>" if f.served else esc(f.format),
                     _pct(f.accuracy) if measured else "–", _pct(f.agreement) if measured else "–",
                     f"{f.images_per_second:.1f}" if measured else "–", esc(verdict)])
    body = table(["format", "top-1 accuracy", "same top-1 as torch", "forward images/s (here)", "accuracy gate"],
                 rows)
    body += note("Bold: the format an endpoint serves on a CPU (the fastest the gate accepted, or SERVING_RUNTIME); "
                 "its predictions fill this report. Each format ran on the same decoded images; the speed is this "
                 "process's forward passes in batches, not an endpoint's (make bench-endpoint measures that).")
    return section("formats", "Formats: top-1 side by side", body)


def classes_section(result: Evaluation, p: Predictions) -> str:
    scores = sorted(result.classes, key=lambda s: (s.f1 if s.support else 2.0, s.name))
    rows = [[esc(s.name), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support), str(s.predicted)]
            for s in scores]
    body = png(plots.class_scores(result), "precision, recall and F1 per class")
    body += '<div class="scroll">' + table(["class", "precision", "recall", "F1", "images", "predicted as it"],
                                            rows) + "</div>"
    body += note("scikit-learn's precision_recall_fscore_support; lowest F1 first. A class predicted but not in "
                 "the images has no recall.")
    return section("classes", "Per class: precision, recall, F1", body)


def confusion_section(result: Evaluation, p: Predictions) -> str:
    body = png(plots.confusion(result, p), "confusion matrix", natural_size=len(result.classes) > plots.FITS_THE_PAGE)
    if len(result.classes) > plots.CLOSE_UP_CLASSES:
        body += png(plots.confusion_close_up(result, p), "confusion matrix close-up")
    if result.pairs:
        rows = [[esc(p.classes[x.true]), esc(p.classes[x.predicted]), str(x.count), _pct(x.share),
                 f"{x.mean_probability:.2f}"] for x in result.pairs]
        body += "<h3>Most confused pairs</h3>" + table(
            ["true class", "predicted as", "images", "share of the true class", "mean probability given"], rows)
    else:
        body += note("No image was misclassified.")
    return section("confusion", "Confusion matrix", body)


def mistakes_section(p: Predictions) -> str:
    if not (p.predicted != p.labels).any():
        return section("mistakes", "Misclassified images", note("None."))
    return section("mistakes", "Misclassified images", png(plots.misclassified(p), "misclassified images") + note(
        "Highest probability for the wrong class first; the probability is the predicted class's."))


def files_section(p: Predictions, files: list[Path]) -> str:
    body = table(["file", "holds"], [(esc(f.name), esc(text)) for f, text in (
        (files[0], "accuracy, top-k, log loss, ECE, per-class scores, confusion matrix, most confused pairs"),
        (files[1], "each image: true class, predicted class, its probability, the true class's probability"))])
    if p.failures:
        body += "<h3>Images that could not be classified</h3>" + table(
            ["image", "reason"], [(esc(path), esc(reason)) for path, reason in p.failures[:200]])
    return section("files", "Files", body)


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
    sections = [summary_section(p, result, data), formats_section(p), classes_section(result, p),
                confusion_section(result, p),
                mistakes_section(p), section("topk", "Top-k accuracy", png(plots.top_k(result), "top-k accuracy")
                                             if result.top_k else note("Two classes or fewer: no top-k.")),
                section("calibration", "Calibration", png(plots.reliability(result, p), "reliability diagram") + note(
                    "Top-1 probability against accuracy in 10 equal bins (scikit-learn's calibration_curve); on "
                    "the diagonal the probabilities mean what they say. ECE: the bins' gaps weighted by their "
                    "images.")),
                files_section(p, [numbers, rows])]
    subtitle = f"{result.images} images, accuracy {_pct(result.accuracy)}, predictions from {p.source}."
    return write_page(path, html_page(f"Evaluation report: {title}", subtitle, NAV, sections))
