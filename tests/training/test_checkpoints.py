"""Checkpoints on a full disk: a clear message, no temporary file left, the earlier checkpoint kept."""
import os
import subprocess
import uuid

import pytest
import torch

from classifier.training import checkpoints


def state(epoch: int, best_epoch: int) -> dict:
    return {"progress": {"epoch": epoch, "best_epoch": best_epoch}, "model": {"w": torch.full((64,), epoch)}}


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs where the machine lets us mount one (root), else skip to the simulated full disk."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the simulated full disk test still runs)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill_disk(directory) -> None:
    descriptor = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(descriptor)


def test_full_disk_on_a_real_small_file_system(small_disk):
    directory = small_disk / "checkpoints"
    checkpoints.save(directory, state(1, 1), {"w": torch.ones(8)})
    fill_disk(small_disk)
    big_best = {"w": torch.zeros(300_000)}  # about 1.2 MB: cannot fit
    with pytest.raises(checkpoints.CheckpointError, match=f"no space left on {directory}"):
        checkpoints.save(directory, state(2, 2), big_best)
    assert sorted(p.name for p in directory.iterdir()) == ["best-epoch-0001.pt", "last.pt"]  # no .tmp
    loaded, best = checkpoints.load(directory, {})
    assert loaded["progress"]["epoch"] == 1 and torch.equal(best["w"], torch.ones(8))


def test_full_disk_simulated(tmp_path, monkeypatch):
    import errno

    directory = tmp_path / "checkpoints"
    checkpoints.save(directory, state(1, 1), {"w": torch.ones(8)})
    real_save = torch.save

    def save_until_full(obj, handle):
        real_save(obj, handle)
        if "progress" in obj:  # last.pt: fails after its best model was written
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", save_until_full)
    with pytest.raises(checkpoints.CheckpointError, match="no space left") as error:
        checkpoints.save(directory, state(2, 2), {"w": torch.zeros(8)})
    assert "the previous checkpoint is kept" in str(error.value)
    monkeypatch.setattr(checkpoints.torch, "save", real_save)
    # the new best (which no last.pt names) and the temporary file are gone; epoch 1 is intact
    assert sorted(p.name for p in directory.iterdir()) == ["best-epoch-0001.pt", "last.pt"]
    loaded, best = checkpoints.load(directory, {})
    assert loaded["progress"]["epoch"] == 1 and torch.equal(best["w"], torch.ones(8))
