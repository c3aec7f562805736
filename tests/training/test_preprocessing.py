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


def resized_then_cropped(image: Image.Image, spec: Preprocessing) -> torch.Tensor:
    """The rule written out in two steps: the whole image resized (shorter side), then torchvision's crop."""
    from torchvision.transforms import functional as TF

    width, height = image.size
    scale = spec.resize_size / min(width, height)
    size = (max(spec.resize_size, round(width * scale)), max(spec.resize_size, round(height * scale)))
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[spec.interpolation]
    resized = image if size == image.size else image.resize(size, resample)
    return TF.pil_to_tensor(TF.center_crop(resized, [spec.image_size, spec.image_size]))


@pytest.mark.parametrize("size", [(640, 480), (375, 500), (301, 257), (256, 300), (90, 70), (2000, 1500)])
@pytest.mark.parametrize("architecture", ["resnet50", "efficientnet_lite0"])  # bilinear, bicubic
def test_eval_transform_gives_the_pixels_of_resizing_the_whole_image_then_cropping(size, architecture):
    spec = get_architecture(architecture).preprocessing(224)
    base = np.random.default_rng(3).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    photo = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)  # smooth, photo-like, with edges
    expected, view = resized_then_cropped(photo, spec).int(), spec.eval_transform(photo).int()
    assert view.shape == expected.shape == (3, 224, 224)
    difference = (view - expected).abs()
    assert difference.max() <= 8 and (difference > 1).float().mean() < 1e-3  # fixed-point rounding only
    assert (difference > 0).float().mean() < 0.02
    if size == (256, 300):  # already at the resize size: the crop alone, exactly
        assert torch.equal(view, expected.to(torch.uint8))


def test_training_crops_keep_at_least_crop_scale_and_scale_one_is_the_flipped_eval_view():
    import random

    photo = Image.fromarray(np.random.default_rng(2).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    spec = get_architecture("resnet50").preprocessing(64)
    view = spec.eval_transform(photo)
    flips = [spec.train_transform(photo, augment=True, rng=random.Random(i), crop_scale=1.0) for i in range(8)]
    assert all(torch.equal(t, view) or torch.equal(t, view.flip(-1)) for t in flips)
    assert any(torch.equal(t, view) for t in flips) and any(torch.equal(t, view.flip(-1)) for t in flips)
    assert spec.augment_draft_size(1.0) == spec.resize_size and spec.augment_draft_size(0.25) == 128
    crops = [spec.train_transform(photo, augment=True, rng=random.Random(i), crop_scale=0.9) for i in range(8)]
    assert all(t.shape == (3, 64, 64) for t in crops) and not any(torch.equal(t, view) for t in crops)


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


# The stored pixels of a photo taken upright, for each EXIF orientation: what the camera wrote.
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
          7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def upright_photo() -> np.ndarray:
    pixels = np.zeros((300, 400, 3), np.uint8)  # no symmetry: every wrong turn or flip shows
    pixels[:100, :200] = (255, 0, 0)
    pixels[200:, 300:] = (0, 0, 255)
    pixels[120:180, 50:] = (0, 255, 0)
    return pixels


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", sorted(STORED))
def test_every_exif_orientation_decodes_upright(orientation, fmt):
    pixels = upright_photo()
    image = Image.fromarray(pixels)
    stored = image.transpose(STORED[orientation]) if STORED[orientation] is not None else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    full = open_rgb(data)
    assert full.size == (400, 300)
    assert np.abs(np.asarray(full, dtype=float) - pixels).mean() < 2
    # JPEG's reduced-size decode still works with the orientation applied (both sides >= the draft size)
    reduced = open_rgb(data, draft_size=120)
    if fmt == "JPEG":
        assert reduced.size == (200, 150)
    small = np.asarray(Image.fromarray(pixels).resize(reduced.size, Image.Resampling.BOX), dtype=float)
    assert np.abs(np.asarray(reduced, dtype=float) - small).mean() < 4


def test_a_rotated_photo_gets_the_same_model_input_as_the_upright_one():
    spec = get_architecture("efficientnet_lite0").preprocessing(96)
    image = Image.fromarray(upright_photo())
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encoded(image.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes())
    assert torch.equal(spec.load_for_eval(rotated), spec.load_for_eval(encoded(image, "PNG")))


@pytest.mark.parametrize("fmt,name", [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("WEBP", "WEBP"),
                                      ("EPS", "EPS")])
def test_only_jpeg_and_png_are_decoded(fmt, name):
    image = Image.new("RGB", (32, 32), (200, 10, 10))
    with pytest.raises(ImageDecodeError, match=f"{name} images are not accepted: only JPEG and PNG are"):
        open_rgb(encoded(image, fmt))
