"""A small trained artifact for the serving tests: EfficientNet-Lite0 (ImageNet weights, offline) with a
head fitted on a few Fashion-MNIST classes (Debian's dataset-fashion-mnist), 64x64 images."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scripts.data.fashion_mnist import CLASSES as FASHION_NAMES, DATASET_DIR as FASHION_DIR, read_idx

CLASSES = ["Trouser", "Sneaker", "Bag", "T-shirt_top"]  # label order of the artifact (not Fashion-MNIST's)
IMAGE_SIZE = 64


def available() -> bool:
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file()


def load_split(split: str, per_class: int, offset: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Up to `per_class` 28x28 images of each of CLASSES, labels in CLASSES order."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    out_images, out_labels = [], []
    for label, name in enumerate(CLASSES):
        indices = np.flatnonzero(labels == FASHION_NAMES.index(name))[offset:offset + per_class]
        out_images += [images[i] for i in indices]
        out_labels += [label] * len(indices)
    return out_images, out_labels


def encode(pixels: np.ndarray, fmt: str = "JPEG", size: int = IMAGE_SIZE, mode: str = "L") -> bytes:
    """A Fashion-MNIST image as an encoded file: upscaled to `size`, in any PIL mode."""
    image = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BICUBIC)
    if mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_tree(root: Path, split: str, per_class: int, offset: int = 0) -> Path:
    """`root/<class>/<n>.jpg` for CLASSES (the artifact's class names): a channel for export or evaluation."""
    images, labels = load_split(split, per_class, offset)
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.jpg").write_bytes(encode(pixels))
    return root


def train_artifact(model_dir: Path, per_class: int = 100, steps: int = 300, seed: int = 0) -> Path:
    from classifier.artifact import save_artifact
    from classifier.model import build_model, get_architecture

    torch.manual_seed(seed)
    preprocessing = get_architecture("efficientnet_lite0").preprocessing(IMAGE_SIZE)
    model = build_model("efficientnet_lite0", len(CLASSES), pretrained=True, freeze_backbone=True).eval()
    images, labels = load_split("train", per_class)
    batch = torch.stack([preprocessing.load_for_eval(encode(pixels)) for pixels in images])
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        features = model.features(batch.contiguous(memory_format=torch.channels_last))
    features, targets = features.clone(), torch.tensor(labels)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    model.head.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(model.head(features), targets)
        loss.backward()
        optimizer.step()
    model.eval()
    save_artifact(model_dir, model, "efficientnet_lite0", CLASSES, preprocessing,
                  hyperparameters={"per_class": per_class, "steps": steps, "head_only": True},
                  metrics={"train_loss": float(loss.detach())})
    return Path(model_dir)


def encode_mode(pixels: np.ndarray, mode: str, fmt: str) -> bytes:
    """A Fashion-MNIST image in a given PIL mode: L, RGB, RGBA, LA, CMYK, P (palette), I;16 (16-bit)."""
    image = Image.fromarray(pixels, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    elif mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int = 12_000, height: int = 12_000) -> bytes:
    """A valid all-black greyscale PNG of width x height pixels that is only ~150 KB: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
