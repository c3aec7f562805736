"""The backbone pass over photo-sized JPEGs: the project's feature pass against a plain script and
against the bare forward at its best on pre-decoded tensors (the limit), all in one run.

Run: .venv/bin/python -m benchmarks.bench_backbone_pass [--classes 8 --per-class 30 --rounds 2]
Targets: project >= 1.5x the plain script, and >= 90 % of the limit.

- project: `classifier.training.feature_cache.compute_features`, as the tuning job's feature pass calls
  it (scripts/local/features.py: batch 64, loader workers `num_workers=auto`, CPU);
- plain: PIL open + convert("RGB") + torchvision Resize + CenterCrop + ToTensor + Normalize, a
  DataLoader with one worker, batch 64, timm's model under `inference_mode`, torch's defaults;
- limit: the backbone alone (normalisation included) on the decoded uint8 tensors, best of memory
  format (contiguous, channels_last) x images per call (4, 8, 16, 32, 64) x threads (1, all cores).

The JPEGs are scikit-image's sample photos at dog-photo sizes (scripts/data/photo_tree.py). Each
measurement runs in a fresh process (threads and malloc settings are process-wide), in rounds that
alternate the three; the best round of each counts, so a busy shared machine hurts all three alike.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "container"))
BATCH_SIZE = 64  # scripts/local/features.py's BATCH_SIZE: the tuning job's feature pass


def _channel(tree: Path):
    from classifier.training.data import scan_channel

    return scan_channel("train", tree / "train")


def measure_project(tree: Path, model_name: str, image_size: int) -> dict:
    import torch

    from classifier.model import build_model, get_architecture
    from classifier.training import feature_cache
    from classifier.training.hyperparameters import resolve_num_workers

    channel = _channel(tree)
    preprocessing = get_architecture(model_name).preprocessing(image_size)
    model = build_model(model_name, len(channel.classes), model_name == "efficientnet_lite0")
    workers = resolve_num_workers("auto")
    started = time.perf_counter()
    feature_cache.compute_features(model, channel, preprocessing, BATCH_SIZE, workers, torch.device("cpu"),
                                   progress=lambda line: None)
    return {"images_per_sec": len(channel) / (time.perf_counter() - started), "workers": workers}


def measure_plain(tree: Path, model_name: str, image_size: int) -> dict:
    import timm
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from classifier.model import get_architecture

    arch = get_architecture(model_name)
    spec = arch.preprocessing(image_size)
    transform = transforms.Compose([transforms.Resize(spec.resize_size), transforms.CenterCrop(image_size),
                                    transforms.ToTensor(), transforms.Normalize(arch.mean, arch.std)])
    paths = [path for path, _ in _channel(tree).samples]

    class Photos(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, index):
            return transform(Image.open(paths[index]).convert("RGB"))

    timm_name = {"efficientnet_lite0": "tf_efficientnet_lite0"}.get(model_name, model_name)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for images in DataLoader(Photos(), batch_size=BATCH_SIZE, num_workers=1):
            model(images)
    return {"images_per_sec": len(paths) / (time.perf_counter() - started)}


def measure_limit(tree: Path, model_name: str, image_size: int, images: int) -> dict:
    import torch

    from classifier import runtime
    from classifier.model import build_model, get_architecture

    runtime.tune_malloc()
    spec = get_architecture(model_name).preprocessing(image_size)
    paths = [path for path, _ in _channel(tree).samples][:images]
    torch.set_num_threads(1)
    spec.load_for_eval(paths[0])  # imports torchvision's transforms: not decoding time
    started = time.perf_counter()
    batch = torch.stack([spec.load_for_eval(path) for path in paths])  # the project's decode, one core
    decode_seconds = (time.perf_counter() - started) / len(paths)
    model = build_model(model_name, 2, model_name == "efficientnet_lite0").eval()
    results = {}
    all_cores = runtime.cpu_count()
    with torch.inference_mode():
        for memory_format in (torch.contiguous_format, torch.channels_last):
            model = model.to(memory_format=memory_format)
            inputs = batch.contiguous(memory_format=memory_format)
            for chunk, threads in itertools.product((4, 8, 16, 32, 64), sorted({1, all_cores})):
                torch.set_num_threads(threads)
                model.backbone(model.normalize(inputs[:chunk]))  # warm-up at this shape
                started = time.perf_counter()
                for part in inputs.split(chunk):
                    model.backbone(model.normalize(part))
                name = f"{'channels_last' if memory_format == torch.channels_last else 'contiguous'} " \
                       f"chunk={chunk} threads={threads}"
                results[name] = len(inputs) / (time.perf_counter() - started)
    best = max(results, key=results.get)
    return {"images_per_sec": results[best], "best": best, "all": results, "decode_ms": 1000 * decode_seconds}


def measure_train_steps(model_name: str, image_size: int, rounds: int, batch_size: int = 16) -> None:
    """Training steps with trained backbone stages on CPU: contiguous vs channels_last, interleaved."""
    import torch
    import torch.nn.functional as F

    from classifier.model import build_model

    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch_size,))
    for stages in (1, "all"):
        torch.manual_seed(0)
        models = {name: build_model(model_name, 10, model_name == "efficientnet_lite0", unfreeze_stages=stages)
                  .to(memory_format=fmt).train() for name, fmt in formats.items()}
        best = dict.fromkeys(formats, 0.0)
        for _ in range(rounds + 1):  # the first round warms up
            for name, fmt in formats.items():
                model = models[name]
                optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-4)
                started = time.perf_counter()
                for _ in range(2):
                    optimizer.zero_grad()
                    F.nll_loss(model(images.contiguous(memory_format=fmt)), labels).backward()
                    optimizer.step()
                best[name] = max(best[name], 2 * batch_size / (time.perf_counter() - started))
        print(f"training steps, unfreeze_stages={stages}, batch {batch_size}: " +
              ", ".join(f"{name} {rate:.1f} images/s" for name, rate in best.items()) +
              f"; channels_last/contiguous {best['channels_last'] / best['contiguous']:.2f}x", flush=True)


MEASURES = {"project": measure_project, "plain": measure_plain, "limit": measure_limit}


def run_child(what: str, tree: Path, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_backbone_pass", "--measure", what, "--tree", str(tree),
               "--model", args.model, "--image-size", str(args.image_size), "--limit-images", str(args.limit_images)]
    if what == "before":
        command[4:5] = ["project", "--container", str(args.before)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=30, help="train images per class (the pass's images)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--limit-images", type=int, default=64, help="images per limit configuration")
    parser.add_argument("--tree", type=Path, help="use this photo tree (default: write one for the run)")
    parser.add_argument("--before", type=Path,
                        help="also measure the feature pass of this copy of container/ (an older revision: "
                             "git archive REV container | tar -x -C DIR, then DIR/container)")
    parser.add_argument("--train-steps", action="store_true",
                        help="instead: training steps with trained backbone stages, contiguous vs channels_last")
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--container", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        if args.container:
            sys.path.insert(0, str(args.container.resolve()))
        extra = (args.limit_images,) if args.measure == "limit" else ()
        print(json.dumps(MEASURES[args.measure](args.tree, args.model, args.image_size, *extra)))
        return 0
    if args.train_steps:
        measure_train_steps(args.model, args.image_size, args.rounds)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tree = args.tree
        if tree is None:
            from scripts.data.photo_tree import make_tree

            tree = Path(tmp) / "photos"
            make_tree(tree, args.classes, (args.per_class, 1, 1), workers=2, echo=lambda line: None)
        images = len(_channel(tree))
        print(f"{images} photo-sized JPEGs (500x375 .. 2000x1500), {args.model} at {args.image_size} px, "
              f"{os.cpu_count()} cores; best of {args.rounds} round(s)", flush=True)
        best: dict[str, dict] = {}
        for round_number in range(1, args.rounds + 1):
            for what in ("plain", "project", "limit", *(("before",) if args.before else ())):
                result = run_child(what, tree, args)
                line = f"  round {round_number} {what:8s} {result['images_per_sec']:6.1f} images/s"
                print(line + (f"  ({result['best']})" if what == "limit" else ""), flush=True)
                if what not in best or result["images_per_sec"] > best[what]["images_per_sec"]:
                    best[what] = result
    plain, project, limit = (best[w]["images_per_sec"] for w in ("plain", "project", "limit"))
    print("limit, every configuration of its best round (images/s):")
    for name, rate in sorted(best["limit"]["all"].items(), key=lambda item: -item[1]):
        print(f"  {name:38s} {rate:6.1f}")
    print(f"plain script: {plain:6.1f} images/s")
    print(f"project:      {project:6.1f} images/s ({best['project']['workers']} loader worker(s))")
    print(f"limit:        {limit:6.1f} images/s ({best['limit']['best']})")
    if "before" in best:
        before = best["before"]["images_per_sec"]
        print(f"project before ({args.before}): {before:6.1f} images/s; now {project / before:.2f}x that")
    # Decoding is CPU work too: without a spare core for it, the pass cannot beat forward + decode.
    forward_ms = 1000 / limit * int(best["limit"]["best"].rsplit("=", 1)[1])  # core-ms per image
    decode_ms = best["limit"]["decode_ms"]
    print(f"decode (the project's, one core): {decode_ms:.1f} ms/image; forward at the limit {forward_ms:.1f} "
          f"core-ms/image: with no core to spare, forward + decode caps the pass at "
          f"{100 * forward_ms / (forward_ms + decode_ms):.0f} % of the limit")
    print(f"project / plain: {project / plain:.2f}x (target >= 1.5x)")
    print(f"project / limit: {100 * project / limit:.0f} % (target >= 90 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
