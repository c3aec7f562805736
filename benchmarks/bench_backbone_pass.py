"""The backbone pass over photo-sized JPEGs: the project's feature pass against a plain script and
against the bare forward at its best on pre-decoded tensors (the limit), all in one run.

Run: .venv/bin/python -m benchmarks.bench_backbone_pass [--classes 8 --per-class 60 --rounds 3]
Targets: project >= 1.5x the plain script, and >= 90 % of the limit.

- project: `classifier.training.feature_cache.FeaturePass.compute`, as the tuning job's feature pass calls
  it (scripts/local/features.py: batch 64, loader workers `num_workers=auto`, CPU);
- plain: PIL open + convert("RGB") + torchvision Resize + CenterCrop + ToTensor + Normalize, a
  DataLoader with one worker, batch 64, timm's model under `inference_mode`, torch's defaults;
- limit: the backbone alone (normalisation included) on the decoded uint8 tensors, in the best of memory
  format (contiguous, channels_last) x images per call (4, 8, 16, 32, 64) x threads (1, all cores),
  chosen on 64 images in the first round, then timed on all the pass's images.

The JPEGs are scikit-image's sample photos at dog-photo sizes (scripts/data/photo_tree.py). The plain
script runs in a fresh process of its own (torch's defaults; malloc settings are process-wide); the
project's pass and the limit run in one process, taking turns twice per round, so that a swing of the
virtual machine's speed (+-15 % from one minute to the next here) hits both alike: project / limit is
the median of those pairs. The best round of each figure is printed as well.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
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


def _backbone(model_name: str, image_size: int):
    """The backbone as a job sets it up (classifier/training/setup.py), with ImageNet weights where they are
    offline (EfficientNet-Lite0; speed does not depend on the weights)."""
    from classifier.training.setup import Backbone

    return Backbone.choose(model_name, image_size, model_name == "efficientnet_lite0", {})


def _pass_rate(model, channel, preprocessing) -> float:
    """Images/s of the project's feature pass, called as the tuning job calls it."""
    import torch

    from classifier.training import feature_cache
    from classifier.training.hyperparameters import resolve_num_workers

    started = time.perf_counter()
    feature_cache.FeaturePass(model, preprocessing, BATCH_SIZE, resolve_num_workers("auto"), torch.device("cpu"),
                              progress=lambda line: None).compute(channel)
    return len(channel) / (time.perf_counter() - started)


def measure_project(tree: Path, model_name: str, image_size: int) -> dict:
    channel, backbone = _channel(tree), _backbone(model_name, image_size)
    return {"images_per_sec": _pass_rate(backbone.build(len(channel.classes)), channel, backbone.preprocessing)}


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


def measure_pass_and_limit(tree: Path, model_name: str, image_size: int, images: int, config: str | None,
                           repeats: int = 2) -> dict:
    """The project's pass and the limit in turns, `repeats` times, in this one process. `config`: the
    limit's configuration; None picks it with the grid on `images` decoded images first."""
    import torch

    from classifier import runtime

    runtime.tune_malloc()
    channel, backbone = _channel(tree), _backbone(model_name, image_size)
    preprocessing = backbone.preprocessing
    paths = [path for path, _ in channel.samples]
    torch.set_num_threads(1)
    preprocessing.load_for_eval(paths[0])  # imports torchvision's transforms: not decoding time
    started = time.perf_counter()
    decoded = torch.stack([preprocessing.load_for_eval(path) for path in paths])  # one core
    decode_ms = 1000 * (time.perf_counter() - started) / len(paths)
    model = backbone.build(len(channel.classes))
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}

    @torch.inference_mode()
    def limit_rate(inputs, name: str) -> float:
        memory_format, chunk, threads = (part.split("=")[-1] for part in name.split())
        torch.set_num_threads(int(threads))
        model.eval().to(memory_format=formats[memory_format])
        inputs = inputs.contiguous(memory_format=formats[memory_format])
        model.backbone(model.normalize(inputs[:int(chunk)]))  # warm-up at this shape
        started = time.perf_counter()
        for part in inputs.split(int(chunk)):
            model.backbone(model.normalize(part))
        return len(inputs) / (time.perf_counter() - started)

    grid = {}
    if config is None:
        for memory_format, chunk, threads in itertools.product(formats, (4, 8, 16, 32, 64),
                                                               sorted({1, runtime.cpu_count()})):
            name = f"{memory_format} chunk={chunk} threads={threads}"
            grid[name] = limit_rate(decoded[:images], name)
        config = max(grid, key=grid.get)
    else:
        limit_rate(decoded[:16], config)  # the process's first forward (shapes, heap) is not timed
    project, limit = [], []
    for _ in range(repeats):
        project.append(_pass_rate(model, channel, preprocessing))
        limit.append(limit_rate(decoded, config))
    return {"project": project, "limit": limit, "config": config, "grid": grid, "decode_ms": decode_ms}


def measure_train_steps(model_name: str, image_size: int, rounds: int, batch_size: int = 16) -> None:
    """Training steps with trained backbone stages on CPU: contiguous vs channels_last, interleaved."""
    import torch
    import torch.nn.functional as F

    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch_size,))
    for stages in (1, "all"):
        torch.manual_seed(0)
        models = {name: _backbone(model_name, image_size).build(10, unfreeze_stages=stages)
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


MEASURES = {"project": measure_project, "plain": measure_plain, "pair": measure_pass_and_limit}


def run_child(what: str, tree: Path, args, config: str | None = None) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_backbone_pass", "--measure", what, "--tree", str(tree),
               "--model", args.model, "--image-size", str(args.image_size), "--limit-images", str(args.limit_images)]
    if what == "before":
        command[4:5] = ["project", "--container", str(args.before)]
    if config:
        command += ["--limit-config", config]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=60, help="train images per class (the pass's images)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--limit-images", type=int, default=64, help="images per configuration of the grid")
    parser.add_argument("--tree", type=Path, help="use this photo tree (default: write one for the run)")
    parser.add_argument("--before", type=Path,
                        help="also measure the feature pass of this copy of container/ (an older revision: "
                             "git archive REV container | tar -x -C DIR, then DIR/container)")
    parser.add_argument("--train-steps", action="store_true",
                        help="instead: training steps with trained backbone stages, contiguous vs channels_last")
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--container", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit-config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        if args.container:
            sys.path.insert(0, str(args.container.resolve()))
        extra = (args.limit_images, args.limit_config) if args.measure == "pair" else ()
        print(json.dumps(MEASURES[args.measure](args.tree, args.model, args.image_size, *extra)))
        return 0
    if args.train_steps:
        measure_train_steps(args.model, args.image_size, args.rounds)
        return 0
    if args.tree is not None and not (args.tree / "train").is_dir():
        parser.error(f"--tree {args.tree}: no train/ folder of class folders in it (scripts/data/photo_tree.py "
                     f"writes one)")
    with tempfile.TemporaryDirectory() as tmp:
        tree = args.tree
        if tree is None:
            from scripts.data.photo_tree import make_tree

            tree = Path(tmp) / "photos"
            make_tree(tree, args.classes, (args.per_class, 1, 1), workers=2, echo=lambda line: None)
        images = len(_channel(tree))
        print(f"{images} photo-sized JPEGs (500x375 .. 2000x1500), {args.model} at {args.image_size} px, "
              f"{os.cpu_count()} cores; {args.rounds} round(s)", flush=True)
        rates: dict[str, list[float]] = {"plain": [], "project": [], "limit": [], "before": []}
        ratios, config, first = [], None, None
        for round_number in range(1, args.rounds + 1):
            plain = run_child("plain", tree, args)["images_per_sec"]
            pair = run_child("pair", tree, args, config)
            first, config = first or pair, pair["config"]
            rates["plain"].append(plain)
            rates["project"] += pair["project"]
            rates["limit"] += pair["limit"]
            ratios += [p / q for p, q in zip(pair["project"], pair["limit"], strict=True)]
            line = (f"  round {round_number}: plain {plain:5.1f}, project " +
                    " / ".join(f"{r:5.1f}" for r in pair["project"]) + " and limit " +
                    " / ".join(f"{r:5.1f}" for r in pair["limit"]) + f" images/s in turns ({config})")
            if args.before:
                rates["before"].append(run_child("before", tree, args)["images_per_sec"])
                line += f"; before {rates['before'][-1]:5.1f}"
            print(line, flush=True)
    print("limit's grid (images/s, first round):")
    for name, rate in sorted(first["grid"].items(), key=lambda item: -item[1]):
        print(f"  {name:38s} {rate:6.1f}")
    plain, project, limit = (max(rates[w]) for w in ("plain", "project", "limit"))
    print(f"plain script: {plain:6.1f} images/s (best round)")
    print(f"project:      {project:6.1f} images/s (best turn)")
    print(f"limit:        {limit:6.1f} images/s (best turn; {config})")
    if rates["before"]:
        before = max(rates["before"])
        print(f"project before ({args.before}): {before:6.1f} images/s (best round); now {project / before:.2f}x that")
    # Decoding is CPU work too: without a spare core for it, the pass cannot beat forward + decode.
    threads = int(config.rsplit("=", 1)[1])
    forward_ms = 1000 / statistics.median(rates["limit"]) * threads  # core-ms per image
    decode_ms = first["decode_ms"]
    print(f"decode (the project's, one core): {decode_ms:.1f} ms/image; forward at the limit {forward_ms:.1f} "
          f"core-ms/image: with no core to spare, forward + decode caps the pass at "
          f"{100 * forward_ms / (forward_ms + decode_ms):.0f} % of the limit")
    print(f"project / plain: {statistics.median(rates['project']) / statistics.median(rates['plain']):.2f}x "
          f"(medians; target >= 1.5x)")
    print(f"project / limit: {100 * statistics.median(ratios):.0f} % (median of {len(ratios)} turns, "
          f"{100 * min(ratios):.0f}-{100 * max(ratios):.0f} %; target >= 90 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
