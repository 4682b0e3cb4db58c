"""Datasets: read once in the driver (`search.sources`), checked, and split with a seed.

A dataset is a training *pool* (every series selection may see) and a *test* split (the
data's own where it has one: MNIST's t10k files, an archive's TEST file, a .npz's X_test;
else a stratified share held out). Selection (Optuna, ASHA, "best") looks at the pool's
validation series only; test is for the report.

How the pool is judged depends on its size:
- a large pool (`CV_BELOW` series or more) gets one stratified validation split;
- a small one (the archives' GunPoint has 50 series) gets K-fold cross-validation: each
  trial trains one model per fold and is judged on every pool series, each by the model
  that did not train on it. A validation split of a few series cannot choose between
  configurations.

Values are kept as read (MNIST's pixels as uint8, 4x smaller in the object store); each
model scales them itself, by a per-channel standardisation fitted on its own training
series (MNIST: pixels / 255), and keeps that scaling in its weights.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.lstm import SeriesShape
from models.train import SeriesTensors
from search.errors import UserError
from search.sources import Part, Source, read

log = logging.getLogger(__name__)

CV_BELOW = 1000  # pools smaller than this are judged by cross-validation
CV_FOLDS = 5
VAL_FRACTION = 0.2  # of the pool, for one validation split (mnist: its own 10%)
TEST_FRACTION = 0.2  # held out as test where the data has no test split of its own
# mnist-5k has no official test files: hold out 500 for test, then 500 for validation
# from the rest (4,000 / 500 / 500), so both evaluation sets are 10% of the whole.
TEST_FRACTION_5K = 0.1
VAL_FRACTION_5K = 500 / 4500


@dataclass(frozen=True)
class Split:
    """Series of one split: values (N, T, F) as read, 0 past each series' length."""

    values: torch.Tensor  # (N, T, F) uint8 (images) or float32
    lengths: torch.Tensor  # (N,) int64 in 1..T: each series' time points
    labels: torch.Tensor  # (N,) int64 in [0, classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: torch.Tensor | slice) -> Split:
        """The series at `index` (indices, a boolean mask or a slice)."""
        return Split(self.values[index], self.lengths[index], self.labels[index])

    def tensors(self, device: torch.device | str = "cpu") -> SeriesTensors:
        """The split on `device`, as models.train trains and evaluates on it."""
        return SeriesTensors(
            self.values.to(device), self.lengths.to(device), self.labels.to(device)
        )


# One way the pool is divided: (training indices, validation indices), sorted.
FoldIndex = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Scaling:
    """How values become a network's input: fitted per training set (`standardise`), or
    fixed (MNIST's pixels: shift 0, scale 255)."""

    fixed: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def shape_for(self, train: Split, classes: int) -> SeriesShape:
        """The network's shape for a model trained on `train`: its scaling fitted there."""
        features = int(train.values.shape[2])
        if self.fixed is not None:
            shift, scale = self.fixed
        else:
            shift, scale = standardisation(train)
        return SeriesShape(features, classes, tuple(shift), tuple(scale))


def standardisation(split: Split) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every time point within each series'
    length (a constant channel keeps scale 1)."""
    values = split.values.double()  # (N, T, F)
    inside = torch.arange(values.shape[1])[None] < split.lengths[:, None]  # (N, T)
    points = values[inside]  # (P, F)
    mean = points.mean(0)
    std = points.std(0, correction=0)
    std = torch.where(std > 1e-8 * (1 + mean.abs()), std, torch.ones_like(std))
    return mean.tolist(), std.tolist()


@dataclass(frozen=True)
class Dataset:
    name: str  # as given to --dataset
    pool: Split  # every series selection may see
    test: Split  # never seen by selection
    classes: tuple  # the labels as the data writes them, in class-index order
    folds: tuple[FoldIndex, ...]  # one validation split, or the K folds of cross-validation
    scaling: Scaling = field(default_factory=Scaling)
    image: bool = False  # each series is an image read row by row (MNIST)
    fingerprint: str = ""  # equal for equal data (studies refuse to mix datasets)

    @property
    def cross_validated(self) -> bool:
        return len(self.folds) > 1

    @property
    def train(self) -> Split:
        """The first fold's training series (with one validation split: all of them)."""
        return self.pool[self.folds[0][0]]

    @property
    def val(self) -> Split:
        """The first fold's validation series (with one validation split: all of them)."""
        return self.pool[self.folds[0][1]]

    @property
    def features(self) -> int:
        return int(self.pool.values.shape[2])

    @property
    def length(self) -> int:
        """The longest series' time points."""
        return int(max(self.pool.lengths.max(), self.test.lengths.max()))

    @property
    def equal_length(self) -> bool:
        lengths = torch.cat([self.pool.lengths, self.test.lengths])
        return bool((lengths == lengths[0]).all())

    def shape_for(self, train: Split) -> SeriesShape:
        return self.scaling.shape_for(train, len(self.classes))

    def sizes(self) -> dict[str, int]:
        val = sum(len(v) for _, v in self.folds)
        sizes = {"train": len(self.pool) - val, "val": val, "test": len(self.test)}
        if self.cross_validated:
            sizes = {"train": len(self.pool), "folds": len(self.folds), "test": len(self.test)}
        return sizes

    def describe(self) -> dict:
        """What run.json records of the data."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "classes": list(self.classes),
            "features": self.features,
            "length": self.length,
            "equal_length": self.equal_length,
            "image": self.image,
            "selection": f"{len(self.folds)}-fold cross-validation"
            if self.cross_validated
            else "one validation split",
        }


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    seed: int = 0,
    cv_folds: int | None = None,
) -> Dataset:
    """Read `name` (see search.sources), check it, and split it with `seed`.

    `cv_folds`: None chooses (cross-validation in CV_FOLDS folds below CV_BELOW pool
    series, else one validation split); 0 one validation split; K >= 2 K folds.
    Raises UserError for anything the user can fix.
    """
    source = read(name, Path(data_dir) if data_dir is not None else None, download)
    where = f"--dataset {name}"
    classes, train_labels = encode_labels(source.train.labels, where)
    pool = _checked(source.train, train_labels, where, "")
    if source.test is not None:
        test_labels = _test_labels(source.test.labels, classes, where)
        test = _checked(source.test, test_labels, where, " (test)")
        if test.values.shape[1] != pool.values.shape[1]:  # one width for the whole dataset
            width = max(test.values.shape[1], pool.values.shape[1])
            pool, test = (_widen(s, width) for s in (pool, test))
    else:
        fraction = TEST_FRACTION_5K if name == "mnist-5k" else TEST_FRACTION
        _need_per_class(pool.labels, 2, classes, where, "to hold out a test split")
        pool, test = _stratified_split(pool, fraction, seed)
    folds = _folds(pool, classes, name, source, cv_folds, seed, where)
    scaling = Scaling(((0.0,) * 28, (255.0,) * 28)) if source.image else Scaling()
    return Dataset(name, pool, test, classes, folds, scaling, source.image, source.fingerprint)


def encode_labels(labels: np.ndarray, where: str) -> tuple[tuple, np.ndarray]:
    """Labels as written (ints or strings) -> (classes in a natural order, indices)."""
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise UserError(f"{where}: labels must be integers or strings, not fractions")
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iuUS":
        raise UserError(f"{where}: labels must be integers or strings, not {labels.dtype}")
    if labels.dtype.kind == "S":
        labels = labels.astype(str)
    unique = np.unique(labels)
    if len(unique) < 2:
        raise UserError(f"{where}: the training series all have one class ({unique[0]!r})")
    classes = sorted(unique.tolist(), key=_natural)
    index = {c: i for i, c in enumerate(classes)}
    return tuple(classes), np.array([index[v] for v in labels.tolist()], dtype=np.int64)


def _natural(label):
    """Sort "2" before "10", and numbers by value."""
    if isinstance(label, str):
        return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label)]
    return [label]


def _test_labels(labels: np.ndarray, classes: tuple, where: str) -> np.ndarray:
    if labels.dtype.kind in "bf":
        labels = labels.astype(np.int64) if np.all(labels == np.round(labels)) else labels
    if labels.dtype.kind == "S":
        labels = labels.astype(str)
    index = {c: i for i, c in enumerate(classes)}
    values = labels.tolist()
    unseen = sorted({v for v in values if v not in index}, key=_natural)
    if unseen:
        shown = ", ".join(repr(v) for v in unseen[:5])
        raise UserError(f"{where}: test labels never seen in training: {shown}")
    return np.array([index[v] for v in values], dtype=np.int64)


def _checked(part: Part, labels: np.ndarray, where: str, what: str) -> Split:
    """Part -> Split, refusing missing or infinite values within any series' length."""
    values = part.values
    if (part.lengths < 1).any():
        i = int(np.argmax(part.lengths < 1))
        raise UserError(f"{where}{what}: series {i} holds no time point (all of it missing)")
    t = values.shape[1]
    inside = np.arange(t)[None] < part.lengths[:, None]  # (N, T)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) & inside[..., None]
        if bad.any():
            i, step, channel = (int(v) for v in np.argwhere(bad)[0])
            kind = "missing (NaN)" if np.isnan(values[i, step, channel]) else "infinite"
            raise UserError(
                f"{where}{what}: {int(bad.sum())} {kind} value(s), the first in series {i} "
                f"at time point {step + 1}, channel {channel + 1}: fill them (e.g. by "
                "interpolation) or end the series before them (lengths)"
            )
        values = np.where(inside[..., None], values, 0.0).astype(np.float32)
        if not np.isfinite(values).all():
            raise UserError(f"{where}{what}: values too large for 32-bit floats")
    elif values.dtype != np.uint8:
        values = np.where(inside[..., None], values, 0).astype(np.float32)
    return Split(
        torch.from_numpy(np.ascontiguousarray(values)),
        torch.from_numpy(part.lengths.astype(np.int64)),
        torch.from_numpy(labels),
    )


def _widen(split: Split, width: int) -> Split:
    pad = width - split.values.shape[1]
    return Split(
        torch.nn.functional.pad(split.values, (0, 0, 0, pad)), split.lengths, split.labels
    )


def _need_per_class(labels: torch.Tensor, needed: int, classes: tuple, where: str, why: str):
    counts = torch.bincount(labels, minlength=len(classes))
    few = [(classes[i], int(n)) for i, n in enumerate(counts) if n < needed]
    if few:
        shown = ", ".join(f"class {c!r} has {n}" for c, n in few[:3])
        raise UserError(f"{where}: too few series per class {why} (at least {needed}): {shown}")


def _folds(
    pool: Split,
    classes: tuple,
    name: str,
    source: Source,
    cv_folds: int | None,
    seed: int,
    where: str,
) -> tuple[FoldIndex, ...]:
    k = cv_folds if cv_folds is not None else (CV_FOLDS if len(pool) < CV_BELOW else 0)
    if k >= 2:
        _need_per_class(pool.labels, k, classes, where, f"for {k}-fold cross-validation")
        return stratified_folds(pool.labels, k, seed)
    _need_per_class(pool.labels, 2, classes, where, "to split off validation series")
    fraction = VAL_FRACTION_5K if name == "mnist-5k" else source.val_fraction or VAL_FRACTION
    keep, held = _stratified_indices(pool.labels, fraction, seed)
    return ((keep, held),)


def stratified_folds(labels: torch.Tensor, k: int, seed: int) -> tuple[FoldIndex, ...]:
    """K disjoint, stratified validation folds of the series with `labels`, and for each
    the others as its training series."""
    from sklearn.model_selection import StratifiedKFold

    kfold = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return tuple(
        (torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(val)))
        for train, val in kfold.split(np.zeros(len(labels)), labels.numpy())
    )


def _stratified_indices(
    labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.model_selection import train_test_split

    n_classes = int(labels.max()) + 1
    # At least one series of each class held; else the share (sklearn rounds it up).
    size = fraction if math.ceil(fraction * len(labels)) >= n_classes else n_classes
    keep, held = train_test_split(
        np.arange(len(labels)), test_size=size, stratify=labels.numpy(), random_state=seed
    )
    return torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(held))


def _stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off `fraction` of the series, keeping each class's share the same in both."""
    keep, held = _stratified_indices(split.labels, fraction, seed)
    return split[keep], split[held]


def confirmation_folds(data: Dataset, folds: int | None, seed: int) -> list[FoldIndex]:
    """`folds` disjoint validation folds of the pool for the confirmation, drawn with
    their own seed, so they differ from the ones the search selected on.

    Each is as large as one of the search's validation folds and stratified like it;
    the series outside a fold are its training set. `folds` None: all of them under
    cross-validation, else 2.
    """
    val = len(data.folds[0][1])
    n_splits = len(data.folds) if data.cross_validated else max(2, round(len(data.pool) / val))
    folds = folds if folds is not None else (n_splits if data.cross_validated else 2)
    if folds > n_splits:
        raise UserError(
            f"--confirm-folds {folds}: the training pool holds only {n_splits} folds the "
            "size of the validation split"
        )
    return list(stratified_folds(data.pool.labels, n_splits, seed + 1))[:folds]
