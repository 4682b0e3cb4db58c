"""Bad input ends in one line on stderr and exit status 2, before any Ray start."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np
import pytest

from search.config import SearchConfig, build_parser, parse_args
from tests.conftest import REPO, write_idx_folder


def run_cli(*args: str, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_defaults_match_the_documented_ones():
    config = parse_args([])
    assert config.trials == 50
    assert config.dataset == "mnist-5k"
    assert config.storage_path == "./runs"
    assert config.cpus_per_trial == 1 and config.gpus_per_trial == 0
    assert config.address is None and config.max_concurrent is None
    # Confirmation folds: 2, or under cross-validation every fold (decided by the data).
    assert config.time_budget is None and (config.confirm_top, config.confirm_folds) == (3, None)
    assert (config.loss, config.objective) == ("last", "accuracy")  # the tutorial's
    assert config.cv_folds is None  # chosen by the data's size


def test_objectives_that_read_early_train_on_every_step_unless_told():
    assert parse_args(["--objective", "early"]).loss == "uniform"
    assert parse_args(["--objective", "anytime"]).loss == "all"
    assert parse_args(["--objective", "early", "--loss", "last"]).loss == "last"
    assert parse_args(["--objective", "accuracy+size"]).loss == "last"
    assert parse_args(["--objective", "accuracy+anytime"]).loss == "all"  # its second reads early


def test_a_dataset_file_is_kept_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_args(["--dataset", "my.npz"]).dataset == str(tmp_path / "my.npz")
    assert parse_args(["--dataset", "ucr:GunPoint"]).dataset == "ucr:GunPoint"


def test_help_explains_every_flag_with_its_default(monkeypatch):
    result = run_cli("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m search.run ")
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width
    text = build_parser().format_help()
    assert (
        "Search LSTM classifiers of labelled sequences (MNIST digits read row by row by "
        "default) with Ray Tune, Optuna TPE and ASHA." in text
    )
    # One block per flag: "--flag METAVAR  help (default: value)".
    blocks = {b.split()[0]: " ".join(b.split()) for b in re.split(r"\n  (?=--)", text)[1:]}
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        block, explained = blocks[flag], " ".join(f.metadata["help"].split())
        if f.type in ("bool", bool) or f.default in (MISSING, None):
            assert block.endswith(explained), flag  # a switch, or no default to state
        else:
            assert block.endswith(f"{explained} (default: {f.default})"), flag
        if f.metadata["choices"]:
            assert block.startswith(f"{flag} {{{','.join(f.metadata['choices'])}}}"), flag
        if f.metadata["nargs"] == "+":
            assert " [" in block.split(explained)[0], flag  # takes one value or more


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def bad_inputs(tmp_path):
    corrupt = write_idx_folder(tmp_path / "corrupt")
    images = corrupt / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:500])
    runs = tmp_path / "runs"
    # An existing run, as far as these checks can tell: they must leave it byte for byte.
    taken = runs / "taken"
    (taken / "trial_x").mkdir(parents=True)
    (taken / "run.json").write_text('{"flags": {}}')
    (taken / "tuner.pkl").write_bytes(b"state")
    (taken / "trial_x" / "result.json").write_text('{"epoch": 1}')
    (runs / "not-a-run").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "keys.json").write_text('[{"lr": 0.001}]')
    (tmp_path / "space.toml").write_text("[hiden_size]\nlow = 64\nhigh = 512\n")
    np.savez(tmp_path / "nan.npz", X=np.array([[0.0, np.nan]] * 10), y=np.arange(10) % 2)
    np.savez(tmp_path / "one-class.npz", X=np.zeros((10, 3)), y=np.zeros(10))
    np.savez(tmp_path / "flat.npz", X=np.zeros((10, 3, 2, 1)), y=np.arange(10) % 2)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    (tmp_path / "Junk_TRAIN.ts").write_text("@data\n1,2:a\n")
    storage = ["--storage-path", str(runs)]
    return {
        "zero trials": ["--trials", "0"],
        "negative trials": ["--trials", "-3"],
        "NaN cpus": ["--cpus-per-trial", "nan"],
        "negative gpus": ["--gpus-per-trial", "-1"],
        "negative max failures": ["--max-failures", "-1"],
        "unknown flag": ["--epochs", "3"],
        "unknown dataset": ["--dataset", "cifar10"],
        "missing data dir": ["--dataset", "mnist", "--data-dir", str(tmp_path / "none")],
        "data dir is a file": ["--dataset", "mnist", "--data-dir", str(tmp_path / "a-file")],
        "corrupt data": ["--dataset", "mnist", "--data-dir", str(corrupt)],
        "data dir for mnist-5k": ["--data-dir", str(corrupt)],
        "npz with a missing value": ["--dataset", str(tmp_path / "nan.npz"), *storage],
        "npz of one class": ["--dataset", str(tmp_path / "one-class.npz"), *storage],
        "npz of the wrong shape": ["--dataset", str(tmp_path / "flat.npz"), *storage],
        "npz that is not one": ["--dataset", str(tmp_path / "junk.npz"), *storage],
        "npz that is not there": ["--dataset", str(tmp_path / "none.npz"), *storage],
        "unreadable ts file": ["--dataset", str(tmp_path / "Junk_TRAIN.ts"), *storage],
        "archive set unknown": ["--dataset", "ucr:NoSuchSet", *storage],
        "archive set not shipped": ["--dataset", "ucr:Coffee", *storage],
        "one fold": ["--cv-folds", "1"],
        "run name with slash": ["--name", "a/b"],
        "hidden run name": ["--name", ".x"],
        "existing run": ["--name", "taken", *storage],
        "resume and overwrite": ["--name", "taken", "--resume", "--overwrite", *storage],
        "resume a missing run": ["--name", "nope", "--resume", *storage],
        "resume a folder that is not a run": ["--name", "not-a-run", "--resume", *storage],
        "storage path is a file": ["--storage-path", str(tmp_path / "a-file")],
        "enqueue file missing": ["--enqueue", str(tmp_path / "none.json"), *storage],
        "enqueue file not JSON": ["--enqueue", str(tmp_path / "bad.json"), *storage],
        "enqueue wrong keys": ["--enqueue", str(tmp_path / "keys.json"), *storage],
        "space file with an unknown hyperparameter": ["--space", str(tmp_path / "space.toml")],
        "cluster config missing": ["--cluster-config", str(tmp_path / "none.yaml"), *storage],
        "cluster config not one": ["--cluster-config", str(tmp_path / "keys.json"), *storage],
        "grace above max": ["--max-epochs", "2", "--grace-epochs", "3"],
        "reduction factor that stops nothing": ["--reduction-factor", "1"],
        "no cluster at address": ["--address", f"127.0.0.1:{_free_port()}", *storage],
        "malformed address": ["--address", "nowhere", *storage],
        "GPU asked, none in the cluster": ["--gpus-per-trial", "1", *storage],
        "zero time budget": ["--time-budget", "0s"],
        "time budget without a unit we know": ["--time-budget", "2d"],
        "more confirmation folds than the pool holds": ["--confirm-folds", "10", *storage],
        "a loss we do not know": ["--loss", "first"],
        "size as the only objective": ["--objective", "size"],
        "ASHA on a time we do not know": ["--asha-time", "minutes"],
    }


# Run as the real command (a fresh interpreter): the parser's own exit, an error met
# after torch is imported, and one met after Ray has started. The rest run in this
# process, where each takes milliseconds instead of an interpreter's start.
IN_A_PROCESS_OF_THEIR_OWN = ("unknown flag", "corrupt data", "GPU asked, none in the cluster")


def main_in_this_process(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """`python -m search.run ARGS`'s exit status and stderr, run here; Ray must not start."""
    import search.cluster
    from search import run

    def no_ray(*args, **kwargs):
        raise AssertionError("this refusal started Ray")

    monkeypatch.setattr(search.cluster.ray, "init", no_ray)
    handler = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        code = run.main(args)
    except SystemExit as exit_:  # the parser's refusals
        code = exit_.code
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, capsys.readouterr().err


def test_bad_inputs_give_one_line_and_status_2(bad_inputs, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    before = tree_digest(runs)
    # No CUDA device for the fresh local Ray to count, as on a machine without one: "GPU
    # asked, none in the cluster" means that ("" hides them all from Ray and torch).
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    with ThreadPoolExecutor(max_workers=3) as pool:
        own = {case: bad_inputs[case] for case in IN_A_PROCESS_OF_THEIR_OWN}
        started = {case: pool.submit(run_cli, *args, env=env) for case, args in own.items()}
        results = {
            case: main_in_this_process(args, capsys, monkeypatch)
            for case, args in bad_inputs.items()
            if case not in own
        }
        for case, future in started.items():
            done = future.result()
            results[case] = (done.returncode, done.stderr)
    for case, (code, stderr) in results.items():
        lines = stderr.strip().splitlines()
        assert code == 2, (case, stderr)
        assert len(lines) == 1, (case, stderr)
        assert "error" in lines[0] and "Traceback" not in stderr, case
    assert tree_digest(runs) == before  # nothing under runs/ changed, by any case
    assert sorted(p.name for p in runs.iterdir()) == ["not-a-run", "taken"]


# The parser's own refusals and the edges it accepts, in this process (the refusals above
# run the CLI itself; these also let mutation testing see which test holds each check).
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--trials", "0"], "--trials: invalid positive integer value: '0'"),
        (["--max-epochs", "0"], "--max-epochs: invalid positive integer"),
        (["--cpus-per-trial", "nan"], "--cpus-per-trial: invalid positive number"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial: invalid positive number"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial: invalid non-negative number"),
        (["--max-failures", "-1"], "--max-failures: invalid non-negative integer"),
        (["--confirm-top", "-1"], "--confirm-top: invalid non-negative integer"),
        (["--cv-folds", "1"], "--cv-folds: invalid fold count (0, or 2 and more) value: '1'"),
        (["--cv-folds", "-1"], "--cv-folds: invalid fold count"),
        (["--name", "a/b"], "--name: invalid run name (one folder name) value: 'a/b'"),
        (["--name", ".x"], "--name: invalid run name"),
        (["--name", ""], "--name: invalid run name"),
        (["--name", "a\\b"], "--name: invalid run name"),
        (["--dataset", "ucr:"], "--dataset: invalid dataset"),
        (["--dataset", "my.csv"], "--dataset: invalid dataset"),
        (["--reduction-factor", "1"], "--reduction-factor: invalid number above 1"),
        (["--time-budget", "0s"], "--time-budget: invalid duration (e.g. 90s, 15m, 2h)"),
        (["--time-budget", "2d"], "--time-budget: invalid duration"),
        (["--dataset", "cifar10"], "--dataset: invalid dataset (mnist-5k, mnist, ucr:NAME"),
        (["--loss", "first"], "--loss: invalid choice: 'first'"),
    ],
)
def test_the_parser_refuses_bad_values_in_one_line(args, says, capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and says in err[-1] and err[-1].endswith("(see --help)")


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        (["--trials", "1"], "trials", 1),
        (["--cv-folds", "0"], "cv_folds", 0),
        (["--cv-folds", "2"], "cv_folds", 2),
        (["--reduction-factor", "1.5"], "reduction_factor", 1.5),
        (["--name", "a.b-c_1"], "name", "a.b-c_1"),
        (["--time-budget", "90"], "time_budget", 90.0),
        (["--time-budget", "90s"], "time_budget", 90.0),
        (["--time-budget", "15m"], "time_budget", 900.0),
        (["--time-budget", "1.5h"], "time_budget", 5400.0),
        (["--gpus-per-trial", "0.25"], "gpus_per_trial", 0.25),
        (["--max-failures", "0"], "max_failures", 0),
        (["--confirm-top", "0"], "confirm_top", 0),
        (["--gpus-per-trial", "0"], "gpus_per_trial", 0.0),
        (["--time-budget", "1s"], "time_budget", 1.0),
        (["--dataset", "mnist"], "dataset", "mnist"),
        (["--dataset", "ucr:A"], "dataset", "ucr:A"),
    ],
)
def test_the_parser_takes_the_edges_of_each_range(args, field, value):
    assert getattr(parse_args(args), field) == value


def test_data_files_are_taken_by_their_suffix_and_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("mine.npz", "Mine_TRAIN.ts"):
        assert parse_args(["--dataset", name]).dataset == str(tmp_path / name)


def test_a_cluster_config_is_kept_as_an_absolute_path(tmp_path, monkeypatch):
    # The command that resumes a search names it; it may run from another folder.
    monkeypatch.chdir(tmp_path)
    assert parse_args(["--cluster-config", "c.yaml"]).cluster_config == tmp_path / "c.yaml"
    assert parse_args([]).cluster_config is None


def test_a_config_from_run_json_holds_paths_not_strings():
    # A resumed search builds its SearchConfig from run.json's strings.
    config = SearchConfig(
        data_dir="data", enqueue="points.json", cluster_config="/c.yaml", space="/s.toml"
    )
    assert (config.data_dir, config.enqueue) == (Path("data"), Path("points.json"))
    assert config.cluster_config == Path("/c.yaml") and config.space == Path("/s.toml")
    assert SearchConfig().data_dir is None and SearchConfig().enqueue is None


def test_default_run_names_are_a_timestamp_and_four_random_hex_digits():
    names = {parse_args([]).name for _ in range(20)}
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", name) for name in names)
    assert len(names) > 1  # made within a second or two: the random digits tell them apart


def test_a_space_file_is_read_at_once_and_kept_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("space.toml").write_text("[batch_size]\nvalue = 64\n")
    assert parse_args(["--space", "space.toml"]).space == tmp_path / "space.toml"
    assert parse_args([]).space is None


# A --space file the model cannot take ends the command before the data is read or Ray
# starts: one line, status 2 (through the whole CLI in this process; Ray must not start).
@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, r"cannot read --space file .*space.toml: No such file or directory"),
        ("[lr\nvalue = 1e-3", r"--space file .*space.toml is not valid TOML: "),
        ("[learning_rate]\nvalue = 1e-3", r"space.toml: unknown hyperparameter 'learning_rate'"),
        ("[lr]\nlow = 0\nhigh = 0.1", r"\[lr\] low 0 is outside what the model takes \(lr > 0\)"),
        ("[num_layers]\nlow = 0\nhigh = 2", r"\[num_layers\] low 0 is outside"),
        ("[dropout]\nvalue = 1", r"\[dropout\] value 1 is outside .*\(0 <= dropout < 1\)"),
        ("[batch_size]\nvalue = 0", r"\[batch_size\] value 0 is outside"),
        ("[patch]\nvalue = 3", r"\[patch\] value 3 is outside .*patch one of 1, 2, 4"),
        ("[hidden_size]\nlow = 512\nhigh = 64", r"\[hidden_size\] low 512 is not below high 64"),
    ],
)
def test_a_bad_space_file_ends_in_one_line_and_status_2(text, says, tmp_path, capsys, monkeypatch):
    path = tmp_path / "space.toml"
    if text is not None:
        path.write_text(text)
    storage = ["--storage-path", str(tmp_path / "runs")]
    code, stderr = main_in_this_process(["--space", str(path), *storage], capsys, monkeypatch)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("python -m search.run: error: ") and re.search(says, lines[0])
    assert not (tmp_path / "runs").exists()  # nothing was made
