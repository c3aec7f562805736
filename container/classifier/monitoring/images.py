"""Simple statistics of an incoming image, read while it is decoded for the model (one decode for both).

- width, height: the image as taken (after its EXIF orientation), in pixels; aspect: width / height;
- brightness and contrast: the mean and standard deviation of its luma (ITU-R BT.601), 0 to 1, on a copy of
  at most THUMBNAIL pixels a side (a few thousand pixels tell the mean as well as millions);
- greyscale: a greyscale file (mode L, LA, I, 1) or colour channels that agree everywhere but in a few
  pixels (a grey photo saved as RGB JPEG carries a little chroma noise);
- exif_rotated: the file's EXIF Orientation tag asks for a turn or a flip (phone photos).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..preprocessing import ACCEPTED_FORMATS, DEFAULT_MAX_PIXELS, Preprocessing

CONTINUOUS = ("width", "height", "aspect", "brightness", "contrast")  # compared as distributions
FLAGS = ("greyscale", "exif_rotated")  # compared as shares
THUMBNAIL = 64
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
GREY_SPREAD = 6  # 0-255: channels this close in 99 % of the pixels make a greyscale image
ORIENTATION_TAG = 0x0112
TURNED = (5, 6, 7, 8)  # orientations that swap width and height


@dataclass(frozen=True)
class ImageStats:
    width: int
    height: int
    brightness: float
    contrast: float
    greyscale: bool
    exif_rotated: bool

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def value(self, name: str) -> float:
        return float(getattr(self, name))


def header(data: bytes) -> tuple[tuple[int, int], str, int]:
    """(size as stored, mode, EXIF orientation) from the file's header, without decoding its pixels."""
    with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
        try:
            orientation = int(image.getexif().get(ORIENTATION_TAG, 1))
        except (ValueError, TypeError, OSError, SyntaxError):  # a broken EXIF block: as if there were none
            orientation = 1
        return image.size, image.mode, orientation


def describe(rgb: Image.Image, size: tuple[int, int], mode: str, orientation: int) -> ImageStats:
    """The statistics of a decoded, upright RGB image whose file header said `size`, `mode`, `orientation`."""
    width, height = size if orientation not in TURNED else size[::-1]
    small = rgb.copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float32)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    grey = mode in GREY_MODES or float(np.percentile(spread, 99)) <= GREY_SPREAD
    return ImageStats(width=int(width), height=int(height), brightness=float(luma.mean() / 255),
                      contrast=float(luma.std() / 255), greyscale=bool(grey), exif_rotated=orientation not in (0, 1))


def inspect(data: bytes, preprocessing: Preprocessing, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Encoded image -> (its statistics, the model's uint8 CHW input through the evaluation preprocessing).
    Raises the decoder's ImageDecodeError / ImageTooLargeError for what the endpoint would refuse."""
    rgb = preprocessing.load(data, max_pixels=max_pixels)  # checks the format and the size first
    size, mode, orientation = header(data)
    return describe(rgb, size, mode, orientation), preprocessing.eval_transform(rgb)


def columns(stats: list[ImageStats]) -> dict[str, np.ndarray]:
    """Per statistic, its values over the images (float64 for the continuous ones, bool for the flags)."""
    found = {name: np.array([s.value(name) for s in stats], dtype=np.float64) for name in CONTINUOUS}
    found.update({name: np.array([getattr(s, name) for s in stats], dtype=bool) for name in FLAGS})
    return found
