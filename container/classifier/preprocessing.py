"""Image decoding and transforms: one implementation for training, evaluation and serving.

The evaluation path (`Preprocessing.load` + `Preprocessing.eval_transform`) is what serving runs on each
request and what training runs on the validation and test sets, so there is no train/serve skew.
Transforms return uint8 CHW tensors; the model converts to float and normalises with the mean and std
stored here (on the GPU when there is one, and with a quarter of the bytes to move).
"""
from __future__ import annotations

import io
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Union

from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The normalisation of ImageNet-trained torchvision weights (other architectures carry their own).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RULE = "shorter_side_then_center_crop"
_RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
# Decompression bombs: PIL warns at 89M pixels; we refuse anything larger than this outright.
DEFAULT_MAX_PIXELS = 40_000_000
# The smallest share of the area a random training crop keeps (the `crop_scale` hyperparameter's default).
DEFAULT_CROP_SCALE = 0.35
IMAGE_SIZES = (32, 1024)  # the crop sides training makes models of (hyperparameter image_size); serving checks them

Source = Union[str, Path, bytes, BinaryIO]


class ImageDecodeError(ValueError):
    """The bytes are not a readable image (unknown format, corrupt or truncated)."""


class ImageTooLargeError(ValueError):
    """The image has more pixels than allowed (decompression bomb guard)."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn an image file into the model's input, saved in the model artifact."""

    image_size: int = 224
    resize_size: int = 256
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    resize_rule: str = RESIZE_RULE

    @classmethod
    def for_architecture(cls, image_size: int, mean, std, interpolation: str, crop_pct: float) -> "Preprocessing":
        return cls(
            image_size=image_size,
            resize_size=int(math.floor(image_size / crop_pct)),
            mean=tuple(mean),
            std=tuple(std),
            interpolation=interpolation,
        )

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        spec = cls(
            image_size=int(data["image_size"]),
            resize_size=int(data["resize_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            interpolation=str(data["interpolation"]),
            resize_rule=str(data["resize_rule"]),
        )
        if spec.resize_rule != RESIZE_RULE:
            raise ValueError(f"unknown resize_rule {spec.resize_rule!r}; this version knows {RESIZE_RULE!r}")
        if spec.interpolation not in _RESAMPLING:
            raise ValueError(f"unknown interpolation {spec.interpolation!r}; known: {sorted(_RESAMPLING)}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
            raise ValueError("mean and std must hold 3 values each, std > 0")
        return spec

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    # --- decoding -------------------------------------------------------------------------------
    def load(self, source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS, draft_size: int | None = None):
        """Decode an image to RGB, letting libjpeg decode at a reduced scale when the image is large."""
        return open_rgb(source, draft_size=draft_size or self.resize_size, max_pixels=max_pixels)

    def open(self, source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
        """The image's header only (`open_image`): its size as the evaluation path will decode it."""
        return open_image(source, draft_size=self.resize_size, max_pixels=max_pixels)

    # --- transforms -----------------------------------------------------------------------------
    def eval_transform(self, image: Image.Image) -> torch.Tensor:
        """Resize the shorter side to `resize_size`, centre-crop `image_size`: uint8 CHW tensor.

        One resize of just the area the crop keeps (Pillow's `box`): the same sample positions and filter
        as resizing the whole image and then cropping, so the same pixels up to rounding, for about half
        the work (benchmarks/bench_backbone_pass.py)."""
        from torchvision.transforms import functional as TF  # here: checking a config needs no torch

        box, scale = center_crop_box(image.size, self.resize_size, self.image_size)
        size = (self.image_size, self.image_size)
        if scale == 1:  # the shorter side is the resize size already: the crop alone
            return TF.pil_to_tensor(image.crop(tuple(round(edge) for edge in box)))
        resample = _RESAMPLING[self.interpolation]
        return TF.pil_to_tensor(image.resize(size, resample, box=box, reducing_gap=3.0 if scale < 0.5 else None))

    def train_transform(self, image: Image.Image, augment: bool, rng: random.Random | None = None,
                        crop_scale: float = DEFAULT_CROP_SCALE) -> torch.Tensor:
        """With `augment`: a random resized crop keeping `crop_scale` to 100 % of the area (1: no crop,
        the evaluation view), then a horizontal flip half of the time; else as eval."""
        if not augment:
            return self.eval_transform(image)
        rng = rng or random
        if crop_scale >= 1:
            tensor = self.eval_transform(image)
            return tensor.flip(-1) if rng.random() < 0.5 else tensor
        crop = _random_resized_crop_box(image.size, rng, scale=(crop_scale, 1.0))
        image = image.resize((self.image_size, self.image_size), _RESAMPLING[self.interpolation], box=crop)
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        from torchvision.transforms import functional as TF

        return TF.pil_to_tensor(image)

    def augment_draft_size(self, crop_scale: float = DEFAULT_CROP_SCALE) -> int:
        # A random crop keeps at least `crop_scale` of the area: decode big enough not to upsample it much.
        if crop_scale >= 1:
            return self.resize_size
        return int(self.image_size / math.sqrt(crop_scale))

    def load_for_eval(self, source: Source, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> torch.Tensor:
        return self.eval_transform(self.load(source, max_pixels=max_pixels))


# Only these decoders are ever run: Pillow would otherwise open any format it knows (GIF, BMP, TIFF, WEBP,
# and EPS through Ghostscript) from whatever bytes arrive, whatever the file name or Content-Type says.
ACCEPTED_FORMATS = ("JPEG", "PNG")
# Leading bytes of formats people send by mistake, to name them in the error.
_OTHER_FORMATS = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                  (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"))


def _sniff_format(handle, position: int | None) -> str | None:
    if position is None:
        return None
    try:
        handle.seek(position)
        head = handle.read(16)
    except (AttributeError, OSError, ValueError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _OTHER_FORMATS if head.startswith(magic)), None)


def open_rgb(source: Source, draft_size: int | None = None,
             max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a JPEG or PNG (greyscale, RGBA, CMYK, palette, 16-bit) as a fully decoded, upright RGB image:
    `decode_rgb(open_image(...))`.

    `draft_size`: the shorter side the caller needs; JPEGs are decoded at the smallest 1/2, 1/4 or 1/8
    scale that keeps both sides at least this large (libjpeg's reduced-size decode, much faster).
    The EXIF Orientation tag (phone photos are often stored sideways) is applied after decoding, so
    the pixels are the way the photo was taken. Raises ImageDecodeError for other formats and for
    unreadable, corrupt or truncated data, and ImageTooLargeError above `max_pixels`.
    """
    return decode_rgb(open_image(source, draft_size=draft_size, max_pixels=max_pixels))


def open_image(source: Source, draft_size: int | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A JPEG or PNG with only its header read: nothing is decoded yet, and `image.size` is the size it will
    be decoded at (a JPEG's reduced scale for `draft_size` applied), which is what decoding it costs.
    ImageTooLargeError when the stored image has more than `max_pixels`; ImageDecodeError when it is not
    a JPEG or PNG image."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        start = source.tell() if hasattr(source, "tell") else 0
    except OSError:  # not seekable: the format is not named in an error
        start = None
    try:
        image = Image.open(source, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(str(error)) from error
    except Image.UnidentifiedImageError as error:
        other = _sniff_path(source) if isinstance(source, (str, Path)) else _sniff_format(source, start)
        what = f"{other} images are not accepted" if other else "not a JPEG or PNG image"
        raise ImageDecodeError(f"{what}: only {' and '.join(ACCEPTED_FORMATS)} are") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"not a readable image: {error}") from error
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, more than the {max_pixels} allowed")
    try:
        if draft_size and image.format == "JPEG" and image.mode in ("RGB", "L"):
            # Both sides stay >= draft_size, so the size needed holds whichever way the photo is turned.
            image.draft(image.mode, (draft_size, draft_size))
    except (OSError, ValueError) as error:
        raise ImageDecodeError(f"not a readable image: {error}") from error
    return image


def decode_rgb(image: Image.Image) -> Image.Image:
    """Decode an image from `open_image`: fully decoded, upright (EXIF Orientation applied), RGB."""
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy for the many upright images
        return _to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(str(error)) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # PIL says "image file is truncated" or "broken data stream" for cut-off files.
        raise ImageDecodeError(f"corrupt or truncated image: {error}") from error


def _sniff_path(path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return _sniff_format(handle, 0)
    except OSError:
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit or float greyscale: scale to 8 bits instead of clipping.
        extrema = image.getextrema()
        scale = 255.0 / max(float(extrema[1]), 1.0)
        image = image.point(lambda value: value * scale).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Composite on white: transparent pixels often hold arbitrary colours.
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def center_crop_box(size: tuple[int, int], resize_size: int, crop_size: int) -> tuple[tuple, float]:
    """The area of an image of `size` that resizing its shorter side to `resize_size` and then centre-
    cropping `crop_size` keeps (torchvision's crop rounding), in the image's coordinates; and the scale."""
    width, height = size
    scale = resize_size / min(width, height)
    resized = (max(resize_size, round(width * scale)), max(resize_size, round(height * scale)))
    left, top = round((resized[0] - crop_size) / 2), round((resized[1] - crop_size) / 2)
    x_step, y_step = width / resized[0], height / resized[1]  # source pixels per resized pixel
    box = (left * x_step, top * y_step, (left + crop_size) * x_step, (top + crop_size) * y_step)
    return box, scale


def _random_resized_crop_box(size, rng: random.Random, scale=(DEFAULT_CROP_SCALE, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop box, drawn from a seeded `random.Random` for reproducibility."""
    width, height = size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = rng.randint(0, width - w)
            top = rng.randint(0, height - h)
            return (left, top, left + w, top + h)
    side = min(width, height)  # fallback: central square crop
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)
