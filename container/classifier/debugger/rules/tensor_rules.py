"""Debugger rules over the tensors the hook saved and the losses and predictions the loop recorded."""
from __future__ import annotations

import math

import numpy as np

from ..records import number
from .results import RuleError, issues, no_issues


def _tensors(data, collection: str, mode: str = "train"):
    if data.tensors is None:
        raise RuleError("no tensors: the job ran with debugger=false (or its hook did not start)")
    if data.tensors.error and not data.tensors.stats:
        raise RuleError(data.tensors.error)
    stats = data.tensors.select(collection, mode)
    hook = data.job.get("hook") or {}
    if not stats and hook.get("collections") and collection not in hook["collections"]:
        raise RuleError(f"no '{collection}' tensors: the hook saves {', '.join(hook['collections'])} only "
                        f"(its settings came from the {hook.get('source')})")
    every = (hook.get("intervals") or {}).get(collection, {}).get(mode)
    if not stats and every:
        raise RuleError(f"no '{collection}' tensors saved in {mode} mode yet (the hook saves them every {every} "
                        f"{mode} steps)")
    if not stats:
        raise RuleError(f"no '{collection}' tensors saved in {mode} mode (is the collection in "
                        f"debugger_collections? with debugger_train_interval larger than the steps run, only "
                        f"step 0 is saved)")
    return stats


def epoch_of(data, step: int, mode: str = "train") -> int | None:
    key = "train_steps" if mode == "train" else "eval_steps"
    for record in data.epochs:
        first, last = record.get(key, (None, None))
        if first is not None and first <= step <= last:
            return record.get("epoch")
    return None


def time_of(data, step: int) -> float | None:
    steps = data.steps
    if "step" in steps and len(steps["step"]):
        match = np.nonzero(steps["step"] == step)[0]
        if match.size:
            return float(steps["elapsed_s"][match[-1]])
    return None


def _where(data, step):
    return dict(step=step, epoch=epoch_of(data, step), time=time_of(data, step))


def vanishing_gradient(data, threshold=1e-7):
    stats = _tensors(data, "gradients")
    low = [s for s in sorted(stats, key=lambda s: (s.step, s.name)) if s.abs_mean < threshold]
    if low:
        first = low[0]
        names = sorted({s.name for s in low})
        return issues(f"mean |gradient| of {first.name} is {first.abs_mean:.3g} < {threshold:g} at step {first.step}"
                      f" ({len(low)} tensor-step(s), {len(names)} tensor(s))", **_where(data, first.step),
                      tensor=first.name, abs_mean=first.abs_mean, tensors=names[:10], occurrences=len(low))
    smallest = min(stats, key=lambda s: s.abs_mean if math.isfinite(s.abs_mean) else math.inf)
    return no_issues(f"{len(stats)} gradient tensor-steps; smallest mean |gradient| {smallest.abs_mean:.3g} "
                     f"({smallest.name}, step {smallest.step})", smallest=smallest.abs_mean)


def exploding_tensor(data, only_nan=False):
    if data.tensors is None:
        raise RuleError("no tensors: the job ran with debugger=false (or its hook did not start)")
    if data.tensors.error and not data.tensors.stats:
        raise RuleError(data.tensors.error)
    stats = sorted(data.tensors.stats, key=lambda s: (s.mode != "train", s.step, s.name))
    if not stats:
        raise RuleError("no tensors saved yet")
    bad = [s for s in stats if s.nan or (not only_nan and s.inf)]
    if bad:
        first = bad[0]
        where = _where(data, first.step) if first.mode == "train" else dict(step=None, epoch=None, time=None)
        return issues(f"{first.name} ({first.collection}, {first.mode} step {first.step}) has {first.nan} NaN and "
                      f"{first.inf} infinite value(s) of {first.size}; {len(bad)} tensor-step(s) in all",
                      **where, tensor=first.name, mode=first.mode, mode_step=first.step, nan=first.nan,
                      inf=first.inf, occurrences=len(bad))
    return no_issues(f"{len(stats)} tensor-steps checked, all finite")


def loss_not_decreasing(data, num_steps=10, diff_percent=0.1, increase_threshold_percent=5):
    stats = sorted(_tensors(data, "losses"), key=lambda s: s.step)
    blocks: dict[int, list] = {}
    for s in stats:
        blocks.setdefault(s.step // max(1, int(num_steps)), []).append((s.step, s.mean))
    keys = sorted(blocks)
    if len(keys) < 2:
        return no_issues(f"{len(stats)} saved training loss value(s) in {len(keys)} block(s) of {num_steps} steps: "
                         f"too few to compare yet", values=len(stats))
    previous = None
    for key in keys:
        values = [v for _, v in blocks[key]]
        mean, last_step = float(np.mean(values)), blocks[key][-1][0]
        if previous is not None:
            prev_mean, prev_step = previous
            if not math.isfinite(mean):
                return issues(f"training loss became {mean} at step {last_step}", **_where(data, last_step),
                              loss=mean, previous_loss=prev_mean)
            change = 100.0 * (prev_mean - mean) / abs(prev_mean) if prev_mean else 0.0
            if -change > increase_threshold_percent:
                return issues(f"training loss rose {-change:.1f} % (> {increase_threshold_percent:g} %): "
                              f"{prev_mean:.4g} (to step {prev_step}) -> {mean:.4g} (to step {last_step})",
                              **_where(data, last_step), loss=mean, previous_loss=prev_mean, change_percent=change)
            if change < diff_percent:
                return issues(f"training loss fell only {change:.2f} % (< {diff_percent:g} %): {prev_mean:.4g} "
                              f"(to step {prev_step}) -> {mean:.4g} (to step {last_step})",
                              **_where(data, last_step), loss=mean, previous_loss=prev_mean, change_percent=change)
        previous = (mean, last_step)
    first, last = float(np.mean([v for _, v in blocks[keys[0]]])), previous[0]
    return no_issues(f"training loss decreased in each of {len(keys) - 1} comparison(s): {first:.4g} -> {last:.4g}")


def _epoch_losses(data):
    rows = [(r["epoch"], number(r.get("train_loss")), number(r.get("valid_loss"))) for r in data.epochs if "epoch" in r]
    if not rows:
        raise RuleError("no epoch has ended yet (no train/valid losses recorded)")
    return rows


def overfit(data, start_step=0, patience=1, ratio_threshold=0.1):
    rows = _epoch_losses(data)
    streak, worst = 0, None
    for epoch, train, valid in rows:
        record = next(r for r in data.epochs if r.get("epoch") == epoch)
        if start_step and record.get("train_steps", (0, 0))[1] < start_step:
            continue
        if not (math.isfinite(train) and math.isfinite(valid)) or train <= 0:
            streak = 0
            continue
        ratio = (valid - train) / train
        worst = max(worst if worst is not None else -math.inf, ratio)
        streak = streak + 1 if ratio > ratio_threshold else 0
        if streak >= patience:
            step = record.get("train_steps", (None, None))[1]
            return issues(f"validation loss {valid:.4g} is {100 * ratio:.0f} % above training loss {train:.4g} "
                          f"(threshold {100 * ratio_threshold:g} %) for {streak} epoch(s)", step=step, epoch=epoch,
                          time=time_of(data, step) if step is not None else None,
                          train_loss=train, valid_loss=valid, ratio=ratio)
    return no_issues(f"{len(rows)} epoch(s); largest (valid - train) / train = "
                     f"{'n/a' if worst is None else f'{worst:.3f}'}", largest_ratio=worst)


def overtraining(data, patience_train=5, patience_validation=10, delta=0.01):
    rows = _epoch_losses(data)
    for column, patience, label in ((1, patience_train, "training"), (2, patience_validation, "validation")):
        best, since = math.inf, 0
        for row in rows:
            value = row[column]
            if math.isfinite(value) and value < best - delta:
                best, since = value, 0
            else:
                since += 1
            if since >= patience:
                epoch = row[0]
                record = next(r for r in data.epochs if r.get("epoch") == epoch)
                step = record.get("train_steps", (None, None))[1]
                return issues(f"{label} loss has not improved by more than {delta:g} for {since} epoch(s) "
                              f"(best {best:.4g}, now {value:.4g})", step=step, epoch=epoch,
                              time=time_of(data, step) if step is not None else None,
                              which=label, best=best, current=value, epochs_without_improvement=since)
    return no_issues(f"training and validation losses still improving ({len(rows)} epoch(s))")


def poor_weight_initialization(data, threshold=10.0, distribution_range=0.001, patience=5, steps=10):
    """Over the first `steps` saved training steps: the ReLU output variance differs by more than `threshold`
    times across layers, or the gradients of every layer lie within a 5th-95th percentile range narrower than
    `distribution_range` (identical or zero initial weights give every unit of a layer the same gradient)."""
    if data.tensors is None:
        raise RuleError("no tensors: the job ran with debugger=false (or its hook did not start)")
    saved = data.tensors.steps("train")[: int(steps)]
    if not saved:
        raise RuleError(data.tensors.error or "no training step saved yet")
    relus = data.tensors.select("relu_output", "train")
    grads = [s for s in data.tensors.select("gradients", "train") if s.spread is not None]
    if not relus and not grads:
        raise RuleError("neither relu_output nor gradients were saved")
    flagged, widest_seen, ratio_seen = [], [], []
    for step in saved:
        variances = [s.var for s in relus if s.step == step and math.isfinite(s.var)]
        ratio = None
        if len(variances) >= 2 and min(variances) > 0:
            ratio = max(variances) / min(variances)
            ratio_seen.append(ratio)
        spreads = [s.spread for s in grads if s.step == step and math.isfinite(s.spread)]
        widest = max(spreads) if spreads else None
        if widest is not None:
            widest_seen.append(widest)
        why = []
        if ratio is not None and ratio > threshold:
            why.append(f"ReLU output variance ratio across layers {ratio:.1f} > {threshold:g}")
        if widest is not None and widest < distribution_range:
            why.append(f"widest 5-95 % gradient spread of any layer {widest:.3g} < {distribution_range:g}")
        if why:
            flagged.append((step, why, ratio, widest))
    needed = min(int(patience), len(saved))
    if flagged and len(flagged) >= needed:
        step, why, ratio, widest = flagged[0]
        return issues(f"in {len(flagged)} of the first {len(saved)} saved steps: {'; '.join(why)} (step {step})",
                      **_where(data, step), variance_ratio=ratio, gradient_spread=widest, flagged_steps=len(flagged))
    summary = []
    if ratio_seen:
        summary.append(f"largest ReLU variance ratio {max(ratio_seen):.1f}")
    if widest_seen:
        summary.append(f"narrowest widest-gradient spread {min(widest_seen):.3g}")
    return no_issues(f"first {len(saved)} saved step(s), {len(flagged)} flagged (needs {needed}): "
                     f"{', '.join(summary) or 'nothing to compare'}")


def dead_relu(data, threshold_inactivity=1.0, threshold_layer=50.0):
    stats = [s for s in _tensors(data, "relu_output") if s.unit_active is not None]
    if not stats:
        raise RuleError("relu_output tensors have no unit dimension")
    worst = None
    for s in sorted(stats, key=lambda s: (s.step, s.name)):
        dead = float((s.unit_active < threshold_inactivity / 100).mean() * 100)
        if worst is None or dead > worst[0]:
            worst = (dead, s)
        if dead > threshold_layer:
            return issues(f"{dead:.0f} % of the {s.unit_active.size} units of {s.name} are dead (active in < "
                          f"{threshold_inactivity:g} % of outputs) at step {s.step} (threshold {threshold_layer:g} %)",
                          **_where(data, s.step), tensor=s.name, dead_percent=dead, units=int(s.unit_active.size))
    return no_issues(f"{len(stats)} ReLU tensor-steps; most dead: {worst[0]:.0f} % ({worst[1].name}, step "
                     f"{worst[1].step})", most_dead_percent=worst[0])


def class_imbalance(data, threshold_imbalance=10.0, threshold_misprediction=0.7, samples=500):
    counts = data.job.get("train_label_counts")
    if counts and not sum(counts):  # no labels known
        counts = None
    classes = data.job.get("classes") or []
    if not counts and not data.predictions:
        raise RuleError("no labels recorded")
    if counts:
        present = [c for c in counts if c > 0]
        ratio = math.inf if len(present) < len(counts) else max(counts) / min(counts)
        if ratio > threshold_imbalance:
            small = int(np.argmin(counts))
            return issues(f"the largest class has {max(counts)} training images, the smallest "
                          f"({classes[small] if small < len(classes) else small}) {min(counts)}: ratio "
                          f"{ratio:.1f} > {threshold_imbalance:g}", imbalance=ratio, counts=counts)
    else:
        ratio = None
    # Mispredictions: the latest epoch's training and validation predictions together.
    latest = max((p["epoch"] for p in data.predictions if p.get("mode") in ("train", "valid")), default=None)
    if latest is None:
        return no_issues(f"imbalance ratio {ratio:.1f}; no predictions recorded yet" if ratio else "no predictions yet")
    matrix = sum(np.asarray(p["confusion"], dtype=float) for p in data.predictions
                 if p.get("epoch") == latest and p.get("mode") in ("train", "valid"))
    seen = int(matrix.sum())
    if seen < samples:
        return no_issues(f"imbalance ratio {ratio:.1f}; {seen} predictions in epoch {latest}, fewer than the "
                         f"{samples} needed to judge mispredictions" if ratio else f"{seen} predictions < {samples}",
                         imbalance=ratio, samples=seen)
    rows = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        wrong = 1 - np.diag(matrix) / rows
    wrong = np.where(rows > 0, wrong, 0.0)
    worst = int(np.argmax(wrong))
    name = classes[worst] if worst < len(classes) else str(worst)
    if wrong[worst] > threshold_misprediction:
        record = next((r for r in data.epochs if r.get("epoch") == latest), {})
        step = record.get("train_steps", (None, None))[1]
        return issues(f"class {name}: {100 * wrong[worst]:.0f} % of its {int(rows[worst])} predictions in epoch "
                      f"{latest} are wrong (> {100 * threshold_misprediction:g} %)", step=step, epoch=latest,
                      time=time_of(data, step) if step is not None else None, class_name=name,
                      misprediction=float(wrong[worst]), imbalance=ratio)
    return no_issues(f"imbalance ratio {ratio:.1f}; worst class {name}: {100 * wrong[worst]:.0f} % mispredicted "
                     f"(epoch {latest}, {seen} predictions)" if ratio else f"worst class {name}: "
                     f"{100 * wrong[worst]:.0f} % mispredicted",
                     imbalance=ratio, worst_misprediction=float(wrong[worst]))


RULES = {
    "VanishingGradient": vanishing_gradient,
    "ExplodingTensor": exploding_tensor,
    "LossNotDecreasing": loss_not_decreasing,
    "Overfit": overfit,
    "Overtraining": overtraining,
    "PoorWeightInitialization": poor_weight_initialization,
    "DeadRelu": dead_relu,
    "ClassImbalance": class_imbalance,
}
