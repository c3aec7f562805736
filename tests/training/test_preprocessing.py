import io

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.model import get_architecture
from classifier.preprocessing import ImageDecodeError, ImageTooLargeError, Preprocessing, open_rgb


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("P", "PNG"),
                                      ("LA", "PNG"), ("I;16", "PNG"), ("RGB", "PNG")])
def test_every_image_mode_becomes_rgb(mode, fmt):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    if mode != "I;16":
        image = rgb.convert(mode)
    else:
        image = Image.fromarray((np.arange(3500).reshape(50, 70) * 18).astype(np.uint16))
    out = open_rgb(encoded(image, fmt))
    assert out.mode == "RGB" and out.size == (70, 50)


def test_eval_transform_is_resize_then_center_crop():
    spec = get_architecture("resnet50").preprocessing(224)
    assert (spec.resize_size, spec.mean, spec.interpolation) == (256, (0.485, 0.456, 0.406), "bilinear")
    tensor = spec.load_for_eval(encoded(Image.new("RGB", (640, 480), (10, 200, 30)), "JPEG"))
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.uint8
    assert abs(int(tensor[1].float().mean()) - 200) <= 3


def test_draft_decode_matches_full_decode_closely():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (15, 20, 3), dtype=np.uint8)
    photo = Image.fromarray(base).resize((2000, 1500), Image.Resampling.BICUBIC)  # smooth, photo-like
    data = encoded(photo, "JPEG", quality=90)
    spec = Preprocessing()
    fast = spec.eval_transform(open_rgb(data, draft_size=spec.resize_size)).float()
    full = spec.eval_transform(open_rgb(data, draft_size=None)).float()
    assert (fast - full).abs().mean() < 3.0  # grey levels out of 255


def test_truncated_and_garbage_bytes_are_decode_errors():
    data = encoded(Image.new("RGB", (300, 300), (1, 2, 3)), "JPEG")
    with pytest.raises(ImageDecodeError):
        open_rgb(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError):
        open_rgb(b"this is not an image")


def test_pixel_limit_refuses_huge_images():
    with pytest.raises(ImageTooLargeError, match="pixels"):
        open_rgb(encoded(Image.new("L", (5000, 5000)), "PNG"), max_pixels=1_000_000)


def test_preprocessing_round_trips_through_json():
    spec = get_architecture("efficientnet_lite0").preprocessing(96)
    assert Preprocessing.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="resize_rule"):
        Preprocessing.from_dict({**spec.to_dict(), "resize_rule": "stretch"})
