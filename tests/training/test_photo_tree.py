"""scripts/data/photo_tree.py: a class-per-folder tree of photo-sized JPEGs, the same files for the same
arguments (the seed-scale loop and bench_backbone_pass read it)."""
from PIL import Image

from classifier.training.data import scan_channel
from scripts.data import photo_tree


def test_the_tree_has_dog_photo_sizes_and_is_the_same_each_time(tmp_path):
    counts = photo_tree.make_tree(tmp_path / "a", classes=3, per_class=(2, 1, 1), echo=lambda line: None)
    assert counts == {"train": 6, "valid": 3, "test": 3}
    train = scan_channel("train", tmp_path / "a" / "train")
    assert len(train.classes) == 3 and len(train) == 6
    sizes = {Image.open(path).size for path, _ in train.samples}
    allowed = {*photo_tree.SIZES, *(size[::-1] for size in photo_tree.SIZES)}
    assert sizes <= allowed
    photo_tree.make_tree(tmp_path / "b", classes=3, per_class=(2, 1, 1), echo=lambda line: None)
    first = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    assert first == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jpg"))
    assert all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in first)
