"""data_identity: what a resume compares about the data, for file-based and in-memory datasets."""

import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from regionattack.bench.identity import data_identity
from regionattack.data.camvid import CamVid


def tensors(generator, n=3):
    return TensorDataset(
        torch.rand(n, 3, 4, 4, generator=generator),
        torch.randint(0, 3, (n, 4, 4), generator=generator),
    )


# ---------------------------------------------------------------- datasets of tensors
def test_tensor_datasets_are_identified_by_the_values_of_their_first_items(generator):
    data = tensors(generator)
    identity = data_identity(data, 2)
    assert identity.keys() == {"images", "tensors_sha256"} and identity["images"] == 2
    assert len(identity["tensors_sha256"]) == 16
    copy = TensorDataset(*(t.clone() for t in data.tensors))
    assert data_identity(copy, 2) == identity
    copy.tensors[0][2] += 0.5  # beyond the first two items: not part of the identity
    assert data_identity(copy, 2) == identity
    copy.tensors[0][1, 0, 0, 0] += 1e-3
    assert data_identity(copy, 2) != identity
    assert data_identity(data, 3) != identity


def test_the_dtype_and_shape_of_the_tensors_are_part_of_the_identity():
    images, labels = torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    identity = data_identity(TensorDataset(images, labels), 1)
    assert data_identity(TensorDataset(images, labels.int()), 1) != identity
    assert data_identity(TensorDataset(images.view(1, 3, 2, 8), labels), 1) != identity
    assert data_identity(TensorDataset(images.double(), labels), 1) != identity


# ---------------------------------------------------------------- the library's file adapters
@pytest.fixture
def folder(camvid, tmp_path):
    """A writable copy of the tiny CamVid folder."""
    root = tmp_path / "camvid"
    for split in ("val", "valannot"):
        (root / split).mkdir(parents=True)
        for file in sorted((camvid / split).iterdir()):
            (root / split / file.name).write_bytes(file.read_bytes())
    return root


def test_file_datasets_are_identified_by_root_split_size_and_listing(folder):
    identity = data_identity(CamVid(folder, "val", size=(16, 24)), 6)
    assert identity["root"] == str(folder.resolve())
    assert identity["split"] == "val" and identity["size"] == [16, 24] and identity["images"] == 6
    assert len(identity["contents_sha256"]) == 16
    assert data_identity(CamVid(folder, "val"), 6)["size"] is None
    assert data_identity(CamVid(folder, "val", size=(16, 24)), 5) != identity


def test_the_same_files_under_another_spelling_or_touched_have_the_same_identity(
    folder, monkeypatch
):
    identity = data_identity(CamVid(folder, "val"), 6)
    monkeypatch.chdir(folder.parent)
    assert data_identity(CamVid(Path("camvid"), "val"), 6) == identity
    assert data_identity(CamVid("./camvid/../camvid", "val"), 6) == identity
    os.utime(folder / "val" / "frame00.jpg", (1_000_000, 1_000_000))
    assert data_identity(CamVid(folder, "val"), 6) == identity


def test_a_renamed_or_resized_file_changes_the_identity(folder):
    identity = data_identity(CamVid(folder, "val"), 6)
    label = folder / "valannot" / "frame05.png"
    label.write_bytes(label.read_bytes() + b"\0")  # one byte more
    assert data_identity(CamVid(folder, "val"), 6) != identity
    for name in ("val/frame05.jpg", "valannot/frame05.png"):
        (folder / name).rename((folder / name).with_name("frame99" + Path(name).suffix))
    assert data_identity(CamVid(folder, "val"), 6) != identity


def test_a_file_replaced_by_another_of_the_same_size_changes_the_identity(folder):
    identity = data_identity(CamVid(folder, "val"), 6)
    image = folder / "val" / "frame02.jpg"
    data = bytearray(image.read_bytes())
    data[-3] ^= 0xFF  # same name, same size, other bytes
    image.write_bytes(bytes(data))
    assert data_identity(CamVid(folder, "val"), 6) != identity


def test_the_file_listing_covers_only_the_first_count_items(folder):
    before = data_identity(CamVid(folder, "val"), 3)
    label = folder / "valannot" / "frame05.png"
    label.write_bytes(label.read_bytes() + b"\0")
    assert data_identity(CamVid(folder, "val"), 3) == before


def test_files_outside_the_root_are_named_by_their_full_path(tmp_path):
    class Listed(torch.utils.data.Dataset):
        """Any dataset with ``root`` and ``pairs`` is identified by its files."""

        def __init__(self, root, pairs):
            self.root, self.pairs = root, pairs

    inside, outside = tmp_path / "root" / "a.png", tmp_path / "elsewhere" / "a.png"
    for path in (inside, outside):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"1234")
    root = tmp_path / "root"
    identity = data_identity(Listed(root, [(inside, inside)]), 1)
    assert identity["split"] is None and identity["size"] is None
    assert data_identity(Listed(root, [(outside, outside)]), 1) != identity  # same name and size
