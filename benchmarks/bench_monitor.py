"""The model monitor on real shift (issue 27 item 5): its false-alarm rate on unshifted windows over repeated
samples, its detection rate on shifted ones, and what the baseline adds to a training job.

Run: .venv/bin/python benchmarks/bench_monitor.py [--repeats 500] [--windows 100,300] [--json FILE] [--keep DIR]
                                                 [--model JOB_DIR]

1. Data: Fashion-MNIST (Debian's dataset-fashion-mnist) written as `make data` writes it (scripts/data/
   fashion_mnist.py: 96 px, JPEG with every fifth image PNG): train 100, valid 50, test 10 per class. The live
   images: a pool of --pool per class from the official test split (never in the data set), written the same way.
2. Two real local training jobs (the training image's entry, as `make train-local`), EfficientNet-Lite0 at 64 px:
   one on the frozen backbone (the head trains on the feature pass's features: the baseline reuses them) and one
   with the last stage fine-tuned (the baseline runs the backbone). Each writes its baseline at its end; its log
   line says what that took, beside the job's own duration. --model: the fine-tuned job of an earlier run (its
   folder under <work>/jobs, trained on the same data: the data set is written the same way each time) instead
   of the two training jobs (some 17 minutes on a 2-core machine): steps 3-5 only.
3. Scenarios, on the fine-tuned job's model: unshifted (the pool), rotated 90 degrees, darkened (x0.6), another
   data set (scikit-learn's handwritten digits), another class mix (three classes only), a partial shift (30 % of
   the images darkened), and a subtle one (x0.85 brightness).
4. Each scenario's images through the monitor's pass once (classifier.monitoring.observe, as `make
   monitor-report` runs it); then --repeats windows of each size in --windows, drawn at random without
   replacement from the scenario's images, each through the five checks (scripts/monitor/drift.py): the share
   of windows flagged (unshifted: the false-alarm rate, with its 95 % Clopper-Pearson interval; shifted: the
   detection rate) and how often each check fired.
5. End to end: an unshifted and a darkened window of the largest size written as capture files by the local
   endpoint's writer (classifier/serving/capture.py), each through `make monitor-report`'s command: both
   reports' paths and verdicts.
Figures are printed (and written with --json), never asserted.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
import scripts  # noqa: E402,F401  (puts container/ on the path)
from classifier.artifact import load_artifact  # noqa: E402
from classifier.monitoring.baseline import Baseline  # noqa: E402
from classifier.monitoring.images import columns  # noqa: E402
from classifier.monitoring.observe import observe  # noqa: E402
from classifier.serving.capture import CaptureWriter  # noqa: E402
from scripts import job_definition  # noqa: E402
from scripts.data import fashion_mnist  # noqa: E402
from scripts.local import jobs  # noqa: E402
from scripts.monitor import drift, monitor_cli  # noqa: E402

CLASSES = 10
SIZE = 96
HP = {"model_name": "efficientnet_lite0", "image_size": "64", "batch_size": "32", "num_workers": "0",
      "epochs": "4", "lr": "0.003", "export": "false"}
BASELINE_LINE = re.compile(r"Monitor baseline: (.*?), (features from the feature pass|backbone pass), ([\d.]+) s")


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if hits == 0 else float(beta.ppf(tail, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1 - tail, hits + 1, n - hits))
    return low, high


# --- data ------------------------------------------------------------------------------------------------

def write_data(root: Path, pool: int) -> tuple[Path, Path]:
    data = root / "fashion-mnist"
    fashion_mnist.main(["--out", str(data), "--classes", str(CLASSES), "--train-per-class", "100",
                        "--valid-per-class", "50", "--test-per-class", "10", "--size", str(SIZE)])
    images = fashion_mnist.read_idx(fashion_mnist.DATASET_DIR / "t10k-images-idx3-ubyte.gz")
    labels = fashion_mnist.read_idx(fashion_mnist.DATASET_DIR / "t10k-labels-idx1-ubyte.gz")
    live = root / "pool"
    # after the data set's test images (the first 10 per class): never the same image twice
    fashion_mnist.write_split(live, images, labels, pool, list(range(CLASSES)), SIZE, offset=10)
    return data, live


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def scenarios(pool: Path, rng: np.random.Generator, size: int) -> dict[str, list[bytes]]:
    """Each scenario's encoded images (the shifted ones `size` images drawn from the pool)."""
    files = sorted(p for p in pool.rglob("*") if p.suffix in (".jpg", ".png"))
    unshifted = [p.read_bytes() for p in files]
    chosen = [files[i] for i in rng.choice(len(files), size=min(size, len(files)), replace=False)]

    def shifted(change) -> list[bytes]:
        return [encode(change(Image.open(p).convert("RGB"))) for p in chosen]

    darker = lambda im: ImageEnhance.Brightness(im).enhance(0.6)  # noqa: E731
    partial = set(rng.choice(len(chosen), size=int(0.3 * len(chosen)), replace=False).tolist())
    from sklearn.datasets import load_digits

    digits = load_digits().images
    picked = rng.choice(len(digits), size=min(size, len(digits)), replace=False)
    three = [p for p in files if p.parent.name.startswith(("001.", "002.", "003."))]
    return {
        "unshifted": unshifted,
        "rotated 90 degrees": shifted(lambda im: im.transpose(Image.Transpose.ROTATE_90)),
        "darkened x0.6": shifted(darker),
        "another data set (digits)": [encode(Image.fromarray((digits[i] * 255 / 16).astype(np.uint8), "L")
                                             .resize((SIZE, SIZE), Image.Resampling.BICUBIC).convert("RGB"))
                                      for i in picked],
        "class mix (3 classes)": [p.read_bytes() for p in three],
        "30 % darkened x0.6": [encode(darker(Image.open(p).convert("RGB"))) if i in partial else p.read_bytes()
                               for i, p in enumerate(chosen)],
        "darkened x0.85": shifted(lambda im: ImageEnhance.Brightness(im).enhance(0.85)),
    }


# --- training --------------------------------------------------------------------------------------------

def train(data: Path, root: Path, extra: dict) -> dict:
    definition = job_definition.load()
    job = jobs.create_job(definition, data, {**HP, **extra}, root=root)
    record = jobs.run_job(job, definition=definition)
    log = (job / jobs.LOG).read_text(errors="replace")
    if record["status"] != "Completed":
        raise RuntimeError(f"training job {job} {record['status']}: {record.get('failure_reason')}\n{log[-3000:]}")
    found = BASELINE_LINE.search(log)
    return {"job": str(job), "duration_s": record.get("duration_seconds"),
            "baseline": found.group(1) if found else None, "baseline_path": found.group(2) if found else None,
            "baseline_s": float(found.group(3)) if found else None,
            "baseline_kb": (job / "model" / "monitor_baseline.npz").stat().st_size // 1024,
            "valid_accuracy": record.get("metrics", {}).get("valid_accuracy")}


# --- the statistics --------------------------------------------------------------------------------------

def windows(seen: dict, baseline: Baseline, repeats: int, size: int, rng: np.random.Generator) -> dict:
    count = len(seen["predicted"])
    if count < size:
        return {"windows": 0, "note": f"only {count} images"}
    flagged, fired = 0, dict.fromkeys(drift.CHECKS, 0)
    for _ in range(repeats):
        pick = rng.choice(count, size=size, replace=False)
        checks = drift.run_checks(baseline, seen["embeddings"][pick], seen["predicted"][pick], seen["top1"][pick],
                                  {name: values[pick] for name, values in seen["stats"].items()})
        flagged += drift.any_drift(checks)
        for check in checks:
            fired[check.name] += bool(check.drift)
    low, high = clopper_pearson(flagged, repeats)
    return {"windows": repeats, "flagged": flagged, "rate": flagged / repeats, "ci95": [low, high],
            "fired": {name: hits / repeats for name, hits in fired.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--windows", default="100,300", help="window sizes (images)")
    parser.add_argument("--pool", type=int, default=200, help="live images per class (unshifted pool)")
    parser.add_argument("--shifted", type=int, default=1000, help="images of each shifted scenario")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temporary folder)")
    parser.add_argument("--model", type=Path, help="an earlier run's fine-tuned job (or its model directory): "
                                                  "no training jobs")
    args = parser.parse_args(argv)
    if not (fashion_mnist.DATASET_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        print(f"needs Fashion-MNIST in {fashion_mnist.DATASET_DIR} (Debian package dataset-fashion-mnist)")
        return 2
    sizes = [int(s) for s in args.windows.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    started = time.time()
    data, pool = write_data(root, args.pool)
    print(f"data: {data}, live pool: {pool}", flush=True)
    results = {"date": time.strftime("%Y-%m-%d"), "repeats": args.repeats, "windows": sizes, "training": {}}
    if args.model:
        model_dir = args.model / "model" if (args.model / "model").is_dir() else args.model
        results["model"] = str(model_dir)
    else:
        for name, extra in (("frozen backbone", {"unfreeze_stages": "0"}),
                            ("last stage fine-tuned", {"unfreeze_stages": "1"})):
            results["training"][name] = train(data, root / "jobs", extra)
            print(f"training, {name}: {json.dumps(results['training'][name])}", flush=True)
        model_dir = Path(results["training"]["last stage fine-tuned"]["job"]) / "model"
    model, _, preprocessing = load_artifact(model_dir)
    baseline = Baseline.load(model_dir)
    results["baseline"] = {"source": baseline.source, "images": baseline.images}
    images = scenarios(pool, rng, args.shifted)
    results["scenarios"] = {}
    for name, encoded in images.items():
        began = time.time()
        seen_raw = observe(model, encoded, preprocessing, what=f"monitor pass: {name}")
        seen = {"embeddings": seen_raw.features @ baseline.projection, "predicted": seen_raw.predicted,
                "top1": seen_raw.top1, "stats": columns(seen_raw.stats)}
        row = {"images": len(encoded), "observe_s": round(time.time() - began, 1)}
        for size in sizes:
            row[str(size)] = windows(seen, baseline, args.repeats, size, rng)
            shown = row[str(size)]
            if shown.get("windows"):
                print(f"{name:<28} window {size:>4}: flagged {shown['rate']:6.1%} of {shown['windows']} "
                      f"(95 % CI {shown['ci95'][0]:.1%}-{shown['ci95'][1]:.1%}); fired: "
                      + ", ".join(f"{k} {v:.0%}" for k, v in shown["fired"].items() if v), flush=True)
        results["scenarios"][name] = row
    # 5. end to end: capture files through the monitor's command
    size = max(sizes)
    results["reports"] = {}
    for name in ("unshifted", "darkened x0.6"):
        chosen = rng.choice(len(images[name]), size=min(size, len(images[name])), replace=False)
        folder = root / "captures" / re.sub(r"[^a-z0-9]+", "-", name)
        shutil.rmtree(folder, ignore_errors=True)
        writer = CaptureWriter(folder, "bench", 100)
        moment = time.time() - len(chosen)
        for offset, index in enumerate(chosen):
            writer.offer(images[name][index], "image/jpeg", b'{"predictions": []}', "application/json",
                         moment + offset)
        writer.close()
        out = root / "reports" / folder.name / "monitor-report.html"
        monitor_cli.main(["--capture", str(folder), "--model", str(model_dir), "--out", str(out)])
        summary = json.loads(out.with_name("monitor.json").read_text())
        results["reports"][name] = {"page": str(out), "drift": summary["drift"],
                                    "verdicts": {c["name"]: c["verdict"] for c in summary["checks"]},
                                    "seconds": summary["seconds"]}
    results["seconds"] = round(time.time() - started)
    print(json.dumps({"training": results["training"], "reports": results["reports"]}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if not args.keep:
        print(f"(work folder {root} kept for the reports; remove it when done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
