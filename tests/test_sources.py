"""Datasets other than MNIST: the archives' sets through aeon, the user's .npz arrays and
.ts files, and every way such a file can be wrong (one UserError each)."""

import socket

import numpy as np
import pytest
import torch

from search.data import load_dataset
from search.errors import UserError
from search.space import SearchSpace

SHIPPED = {
    # name: (classes, train, test, time points, channels, equal length)
    "GunPoint": (2, 50, 150, 150, 1, True),
    "ItalyPowerDemand": (2, 67, 1029, 24, 1, True),
    "ArrowHead": (3, 36, 175, 251, 1, True),
    "BasicMotions": (4, 40, 40, 100, 6, True),
    "JapaneseVowels": (9, 270, 370, 29, 12, False),
}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the sets aeon ships are offline."""

    def refuse(*args, **kwargs):
        raise AssertionError("a dataset loader tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_archive_sets_aeon_ships_load_offline(name, no_network):
    classes, train, test, length, channels, equal = SHIPPED[name]
    data = load_dataset(f"ucr:{name}", seed=0)
    assert len(data.classes) == classes
    assert (len(data.pool), len(data.test)) == (train, test)  # the archive's own split
    assert data.features == channels and data.length == length
    assert data.equal_length is equal
    assert data.cross_validated  # fewer than 1,000 training series
    assert data.pool.values.dtype == torch.float32


def test_archive_labels_keep_their_names_in_a_natural_order():
    data = load_dataset("ucr:BasicMotions")
    assert data.classes == ("badminton", "running", "standing", "walking")
    assert load_dataset("ucr:JapaneseVowels").classes == tuple(str(i) for i in range(1, 10))


def test_unequal_lengths_are_kept_and_padded_with_zeros():
    data = load_dataset("ucr:JapaneseVowels")
    lengths = data.pool.lengths
    assert (lengths.min(), lengths.max(), data.test.lengths.max()) == (7, 26, 29)
    assert data.pool.values.shape[1] == 29  # one width for the pool and the test split
    i = int(torch.argmin(lengths))
    assert torch.all(data.pool.values[i, lengths[i] :] == 0)


def test_unknown_and_unshipped_archive_sets_are_one_line(no_network, tmp_path):
    with pytest.raises(UserError, match="not a set of the UCR/UEA archives"):
        load_dataset("ucr:NoSuchSet")
    with pytest.raises(UserError, match="did you mean ucr:GunPoint"):
        load_dataset("ucr:gunpoint")
    # A real archive set aeon does not ship: refused without --download, nothing fetched.
    with pytest.raises(UserError, match="pass --download --data-dir"):
        load_dataset("ucr:Coffee")
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("ucr:Coffee", download=True)


def test_a_failed_archive_download_is_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr("aeon.datasets.load_classification", offline)
    with pytest.raises(UserError) as caught:
        load_dataset("ucr:Coffee", tmp_path, download=True)
    assert "\n" not in str(caught.value) and "could not download ucr:Coffee" in str(caught.value)


def test_an_archive_set_in_data_dir_is_read_from_there(tmp_path):
    write_ts(tmp_path / "Toy" / "Toy_TRAIN.ts", *toy_series(30))
    write_ts(tmp_path / "Toy" / "Toy_TEST.ts", *toy_series(12, seed=1))
    data = load_dataset("ucr:Toy", tmp_path)
    assert (len(data.pool), len(data.test)) == (30, 12)


# ---------------------------------------------------------------- .ts files


def toy_series(n: int, length: int = 20, seed: int = 0, vary: bool = False):
    """n univariate series of two classes: a rising or a falling ramp, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.array(["up", "down"] * (n // 2) + ["up"] * (n % 2))
    series = []
    for label in labels:
        t = length - (rng.integers(0, length // 2) if vary else 0)
        ramp = np.linspace(0, 1, t) * (1 if label == "up" else -1)
        series.append(ramp + 0.05 * rng.standard_normal(t))
    return series, labels


def write_ts(path, series, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    equal = len({len(s) for s in series}) == 1
    classes = " ".join(sorted(set(labels)))
    lines = [
        "@problemName toy",
        "@timeStamps false",
        "@missing false",
        "@univariate true",
        f"@equalLength {'true' if equal else 'false'}",
        *([f"@seriesLength {len(series[0])}"] if equal else []),
        f"@classLabel true {classes}",
        "@data",
    ]
    lines += [
        ",".join(f"{v:.5f}" for v in s) + f":{y}" for s, y in zip(series, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def test_ts_files_read_with_the_test_file_beside_them(tmp_path):
    write_ts(tmp_path / "Ramps_TRAIN.ts", *toy_series(40, vary=True))
    write_ts(tmp_path / "Ramps_TEST.ts", *toy_series(10, seed=2))
    data = load_dataset(str(tmp_path / "Ramps_TRAIN.ts"))
    assert (len(data.pool), len(data.test), data.classes) == (40, 10, ("down", "up"))
    assert not data.equal_length
    assert data.fingerprint.startswith("ts:")


def test_a_ts_file_without_a_test_file_holds_one_out(tmp_path):
    write_ts(tmp_path / "Ramps_TRAIN.ts", *toy_series(40))
    data = load_dataset(str(tmp_path / "Ramps_TRAIN.ts"), seed=0)
    assert len(data.test) == 8 and len(data.pool) == 32  # 20% held out, stratified
    assert torch.bincount(data.test.labels).tolist() == [4, 4]


def test_bad_ts_files_are_one_line(tmp_path):
    with pytest.raises(UserError, match="NAME_TRAIN.ts"):
        load_dataset(str(tmp_path / "Ramps_TEST.ts"))
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "Nothing_TRAIN.ts"))
    (tmp_path / "Junk_TRAIN.ts").write_text("@problemName junk\n@data\n1,2,3\n4,5\n")
    with pytest.raises(UserError, match="Junk_TRAIN.ts"):
        load_dataset(str(tmp_path / "Junk_TRAIN.ts"))


# ---------------------------------------------------------------- .npz arrays


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def ramps(n: int = 40, length: int = 16, features: int = 2, seed: int = 0):
    """(X (n, length, features), y): class 1 rises in channel 0, class 0 falls."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    ramp = np.linspace(-1, 1, length)
    x = 0.1 * rng.standard_normal((n, length, features))
    x[:, :, 0] += np.where(y[:, None] == 1, ramp, -ramp)
    return x.astype(np.float32), y


def test_a_fixed_length_npz_with_its_own_test_split(tmp_path):
    x, y = ramps(40)
    xt, yt = ramps(10, seed=1)
    data = load_dataset(save_npz(tmp_path / "d.npz", X=x, y=y, X_test=xt, y_test=yt))
    assert (len(data.pool), len(data.test), data.features, data.length) == (40, 10, 2, 16)
    assert data.classes == (0, 1) and data.equal_length
    assert data.fingerprint.startswith("npz:")


def test_a_univariate_npz_of_string_labels_and_unequal_lengths(tmp_path):
    x, y = ramps(30, features=1)
    names = np.array(["fall", "rise"])[y]
    lengths = np.where(np.arange(30) % 3 == 0, 9, 16)
    x[lengths == 9, 9:] = np.nan  # past a series' length anything goes: it is ignored
    data = load_dataset(save_npz(tmp_path / "d.npz", X=x[:, :, 0], y=names, lengths=lengths))
    assert data.classes == ("fall", "rise") and data.features == 1
    assert not data.equal_length
    short = data.pool.lengths == 9
    assert torch.all(data.pool.values[short][:, 9:] == 0)


def test_series_that_end_in_missing_values_end_there(tmp_path):
    x, y = ramps(20)
    x[0, 12:] = np.nan  # missing in every channel to the end: the archives' padding
    data = load_dataset(save_npz(tmp_path / "d.npz", X=x, y=y), cv_folds=0)
    everything = torch.cat([data.pool.lengths, data.test.lengths])
    assert sorted(everything.tolist()).count(12) == 1


def test_standardisation_is_fitted_on_training_series_only(tmp_path):
    x, y = ramps(40)
    x[:, :, 1] += 100.0  # channel 1 sits far from zero
    xt, yt = ramps(10, seed=1)
    xt[:, :, 1] += 1e6  # a test split far away changes nothing
    data = load_dataset(save_npz(tmp_path / "d.npz", X=x, y=y, X_test=xt, y_test=yt))
    train = data.pool[data.folds[0][0]]
    shape = data.shape_for(train)
    own = train.values[:, :, 1]
    assert shape.shift[1] == pytest.approx(float(own.double().mean()), rel=1e-6)
    assert shape.scale[1] == pytest.approx(float(own.double().std(correction=0)), rel=1e-5)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((4, 3, 2, 2)), "y": np.arange(4) % 2}, r"expected \(N, T, F\)"),
        ({"X": np.zeros((4, 3)), "y": np.arange(5) % 2}, "one label per series"),
        ({"X": np.zeros((4, 3))}, "has no array 'y'"),
        ({"X": np.zeros((4, 3)), "y": np.zeros(4)}, "all have one class"),
        ({"X": np.zeros((4, 3)), "y": np.array([0.5, 1, 0, 1])}, "integers or strings"),
        ({"X": np.zeros((4, 3)), "y": np.arange(4) % 2, "Z": np.zeros(1)}, "unknown array"),
        (
            {"X": np.zeros((4, 3)), "y": np.arange(4) % 2, "lengths": np.array([1, 2, 3, 4])},
            "1..3",
        ),
        (
            {"X": np.zeros((4, 3)), "y": np.arange(4) % 2, "lengths": np.array([1.0, 2, 3, 3])},
            "integers, one per series",
        ),
        (
            {"X": np.zeros((4, 3)), "y": np.arange(4) % 2, "X_test": np.zeros((2, 3))},
            "come together",
        ),
        (
            {
                "X": np.zeros((8, 3, 2)),
                "y": np.arange(8) % 2,
                "X_test": np.zeros((2, 3, 3)),
                "y_test": np.array([0, 1]),
            },
            "X_test has 3 values per step",
        ),
        (
            {
                "X": np.zeros((8, 3)),
                "y": np.arange(8) % 2,
                "X_test": np.zeros((2, 3)),
                "y_test": np.array([0, 7]),
            },
            "test labels never seen in training: 7",
        ),
        ({"X": np.array([[1.0, np.nan, 2.0]] * 6), "y": np.arange(6) % 2}, "missing \\(NaN\\)"),
        ({"X": np.array([[1.0, np.inf, 2.0]] * 6), "y": np.arange(6) % 2}, "infinite"),
        ({"X": np.zeros((6, 3)), "y": np.array([0, 0, 0, 0, 0, 1])}, "too few series per class"),
        (
            {"X": np.array([[np.nan] * 3] + [[1.0, 2.0, 3.0]] * 9), "y": np.arange(10) % 2},
            "series 0 holds no time point",
        ),
        ({"X": np.array([["a", "b"]] * 4), "y": np.arange(4) % 2}, "not numbers"),
    ],
)
def test_bad_npz_files_are_one_line(tmp_path, arrays, message):
    with pytest.raises(UserError, match=message) as caught:
        load_dataset(save_npz(tmp_path / "bad.npz", **arrays))
    assert "\n" not in str(caught.value)


def test_unreadable_and_pickled_npz_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(str(tmp_path / "none.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(UserError, match="cannot read"):
        load_dataset(str(tmp_path / "junk.npz"))
    objects = np.empty(4, dtype=object)
    objects[:] = [np.zeros(3)] * 4
    path = save_npz(tmp_path / "objects.npz", X=objects, y=np.arange(4) % 2)
    with pytest.raises(UserError, match="Python objects"):
        load_dataset(path)


def test_cross_validation_needs_enough_series_of_each_class(tmp_path):
    x, y = ramps(12)
    y[:3] = 2  # class 2: 3 series
    path = save_npz(tmp_path / "d.npz", X=x, y=y, X_test=x[:3], y_test=y[:3])
    with pytest.raises(UserError, match="for 5-fold cross-validation"):
        load_dataset(path)
    assert len(load_dataset(path, cv_folds=3).folds) == 3


def test_the_space_reads_long_series_in_patches():
    assert SearchSpace.for_length(28).patches == (1,)  # MNIST's rows: as the tutorial read
    space = SearchSpace.for_length(251)  # ArrowHead
    assert space.patches == (4, 8, 16, 32) and "patch" in space.params  # 63 to 8 steps
    assert space.seed_config["patch"] == 8  # about the tutorial's 28 steps
    assert SearchSpace.for_length(1460).patches == (32, 64)  # 46 and 23 steps
    assert SearchSpace.for_length(10_000).patches == (64,)  # longer: the coarsest there is
