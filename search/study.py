"""The search's Optuna study, kept in storage so that it outlives the run.

By default the study is a SQLite file in the run folder (`study.db`), written by the
driver alone. `--study-storage URL` keeps it in a database instead (PostgreSQL:
`postgresql+psycopg://user:password@host:5432/db`, with the `psycopg[binary]` package),
where several searches can share one study (`--study-name`) and a dashboard can read it
while the searches write.

Every trial a run adds carries two user attributes: the run's name (`run`) and Ray Tune's
trial id (`tune_trial_id`). They tell a run's own trials apart in a shared study, and let
a resumed run find the trials that its saved state never heard of.

A study records what its values mean (its `signature`: dataset, loss, objective and the
search space); a search joins a study, or is warm-started from one, only with the same
signature.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search import metrics as m
from search.errors import UserError
from search.run_record import RUN_JSON, RunRecord
from search.space import SearchSpace

if TYPE_CHECKING:  # study.py is read by the analysis too, which needs neither
    from search.config import SearchConfig
    from search.storage import RunLocation

STUDY_DB = "study.db"  # the default storage, inside the run folder
RUN_ATTR = "run"  # user attribute: the run that added the trial
TUNE_ID_ATTR = "tune_trial_id"  # user attribute: Ray Tune's id of the trial
# User attribute: what an epoch of the trial cost, in units of the tutorial's epoch on the
# same machine (`search.cost`); recorded under --asha-time seconds, where it places a
# warm start's per-epoch values on rungs counted in training time.
EPOCH_UNITS_ATTR = "epoch_units"
SIGNATURE_ATTR = "signature"  # study user attribute: see `signature`
# What a warm start copies: trials that measured something.
WARM_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Waiting out another process that creates the same tables or study at the same moment.
_ATTEMPTS, _RETRY_SECONDS = 10, 0.5
REMEASURED = 3  # the sources' best configurations a warm-started search trains again


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives: a SQLAlchemy URL and the study's name in it."""

    url: str
    name: str

    @classmethod
    def in_run_folder(cls, run_dir: str | Path, name: str) -> StudyRef:
        return cls(sqlite_url(Path(run_dir) / STUDY_DB), name)

    @property
    def display(self) -> str:
        """The URL without its password, for messages."""
        return without_password(self.url)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (`sqlite_url`'s inverse); None for any other database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def signature(dataset: str, loss: str, objective: str, space: SearchSpace) -> dict:
    """What a study's values mean: trials of two studies compare only if these agree.
    `dataset` names the data and what its files hold (`driver._data_identity`)."""
    dists = {
        name: optuna.distributions.distribution_to_json(d)
        for name, d in space.distributions().items()
    }
    return {"dataset": dataset, "loss": loss, "objective": objective, "space": dists}


def directions(objective: str) -> list[str]:
    modes = [mode for _, mode in m.objective_metrics(objective)]
    return ["maximize" if mode == "max" else "minimize" for mode in modes]


def open_storage(url: str) -> RDBStorage:
    """An RDB storage at `url`; a bad or unreachable URL is the user's error, said in one line."""
    import sqlalchemy.exc

    engine_kwargs = {"pool_pre_ping": True}
    if (path := sqlite_path(url)) is not None:
        engine_kwargs = {"creator": functools.partial(_sqlite_connection, str(path))}
    try:
        for attempt in range(_ATTEMPTS):
            try:
                with optuna_quiet():
                    return RDBStorage(url, engine_kwargs=engine_kwargs)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Two searches starting at once on an empty database both create Optuna's
                # tables; the one that loses the race finds them made on its next try.
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(_RETRY_SECONDS)
    except sqlalchemy.exc.ArgumentError as exc:  # includes an unknown dialect
        raise UserError(
            f"study storage {without_password(url)}: not a database URL ({exc})"
        ) from None
    except ImportError:
        raise UserError(
            f"study storage {without_password(url)}: its database driver is not installed "
            "(for PostgreSQL: pip install 'psycopg[binary]')"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UserError(f"cannot open study storage {without_password(url)}: {reason}") from None


def _sqlite_connection(path: str):
    """A connection to the SQLite study at `path`, set up for a writer that commits often.

    Write-ahead logging: a commit appends to a log instead of syncing a rollback journal
    and the pages (5-6 ms each here, about 1,000 per 50-trial search), and `synchronous
    NORMAL` syncs at checkpoints only. A killed process loses nothing; a power cut may
    lose the last commits, never the file. WAL needs a local disk: the driver keeps a
    run folder's study on one (search.driver).
    """
    import sqlite3

    # Waits instead of failing at once while another connection writes (a dashboard
    # snapshot, a warm start reading a running search's study).
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        with contextlib.suppress(sqlite3.OperationalError):  # e.g. a read-only copy
            connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def prepare(ref: StudyRef, sig: dict) -> optuna.Study:
    """Create the study `ref` names, or join it if it exists and was made for the same
    search (`sig`); refuses one made for another search before anything is written."""
    storage = open_storage(ref.url)
    existing = _find(storage, ref.name)
    if existing is None:
        try:
            with optuna_quiet():
                study = optuna.create_study(
                    storage=storage, study_name=ref.name, directions=directions(sig["objective"])
                )
        except optuna.exceptions.DuplicatedStudyError:  # another search created it just now
            existing = _find(storage, ref.name)
        else:
            study.set_user_attr(SIGNATURE_ATTR, sig)
            return study
    _wait_for_signature(existing)
    check_signature(existing, sig, f"study {ref.name!r} in {ref.display}")
    return existing


def _wait_for_signature(study: optuna.Study) -> None:
    """Until `study`'s creator has recorded its signature: creating a study and signing it
    are two commits, and a search starting at the same moment can find the study between
    them. One that stays unsigned (another tool's) is left as it is after a few seconds.
    (`user_attrs` reads the storage at each call.)"""
    for _ in range(_ATTEMPTS):
        if SIGNATURE_ATTR in study.user_attrs:
            return
        time.sleep(_RETRY_SECONDS)


def load(ref: StudyRef, what: str = "") -> optuna.Study:
    """The existing study `ref` names (UserError if there is none; `what` names the
    flag that asked for it). Never creates anything, not even an empty SQLite file."""
    prefix = f"{what}: " if what else ""
    path = sqlite_path(ref.url)
    if path is not None and not path.is_file():
        raise UserError(f"{prefix}no study file {path}")
    study = _find(open_storage(ref.url), ref.name)
    if study is None:
        raise UserError(f"{prefix}no study {ref.name!r} in {ref.display}")
    return study


def _find(storage: RDBStorage, name: str) -> optuna.Study | None:
    try:
        with optuna_quiet():
            return optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # Optuna's "no such study"
        return None


def check_signature(study: optuna.Study, sig: dict, what: str) -> None:
    """UserError unless `study` was made for a search with signature `sig`."""
    theirs = study.user_attrs.get(SIGNATURE_ATTR)
    if theirs is None:
        raise UserError(f"{what} was not made by this search tool (it has no signature)")
    for key in ("dataset", "loss", "objective"):
        if theirs.get(key) != sig[key]:
            raise UserError(
                f"{what} was made for another search: {key} {theirs.get(key)} "
                f"(this one: {sig[key]})"
            )
    if theirs.get("space") != sig["space"]:
        changed = sorted(
            name
            for name in set(theirs.get("space", {})) | set(sig["space"])
            if theirs.get("space", {}).get(name) != sig["space"].get(name)
        )
        raise UserError(
            f"{what} was made for another search space (differs in {', '.join(changed)})"
        )


def warm_start(study: optuna.Study, sources: list[tuple[str, optuna.Study]], run: str) -> dict:
    """Seed `study` with what `sources` measured; returns how many trials it copied and
    how many configurations it queued to train again.

    - Their COMPLETE and PRUNED trials are copied, values and per-epoch values included,
      each naming the source it came from: TPE starts from what they learned.
    - Their best REMEASURED configurations are queued as this run's first trials (marked
      with `run`). A copied trial's weights stay in its own run folder; trained again
      here, the best configurations known so far compete in this run's ranking,
      confirmation and `best/`.
    """
    copied = []
    for label, source in sources:
        for trial in source.get_trials(deepcopy=True, states=WARM_STATES):
            trial.user_attrs.pop(TUNE_ID_ATTR, None)  # the trial ran in another search
            trial.set_user_attr("warm_start_from", label)
            copied.append(trial)
    with optuna_quiet():
        study.add_trials(copied)
    best = _best_configurations(copied, study.directions[0], REMEASURED)
    for params in best:
        study.enqueue_trial(params, user_attrs={RUN_ATTR: run, "remeasures": True})
    return {"copied": len(copied), "remeasured": len(best)}


@dataclass(frozen=True)
class WarmCurve:
    """A warm-start trial's per-epoch values of the primary objective, and what an epoch
    of it cost in tutorial epochs (None where its run did not measure that)."""

    values: dict[int, float]
    epoch_units: float | None


def warm_curves(study: optuna.Study) -> list[WarmCurve]:
    """The warm-start trials' curves (none for a multi-objective study, which keeps no
    per-epoch values)."""
    return [
        WarmCurve(dict(t.intermediate_values), t.user_attrs.get(EPOCH_UNITS_ATTR))
        for t in study.get_trials(deepcopy=False)
        if "warm_start_from" in t.user_attrs and t.intermediate_values
    ]


def check_costs(study: optuna.Study, what: str) -> None:
    """A warm start under --asha-time seconds places the source's values on rungs by
    their training time: every source trial with a curve must carry its cost."""
    if any(
        t.intermediate_values and EPOCH_UNITS_ATTR not in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=WARM_STATES)
    ):
        raise UserError(
            f"{what}: its trials carry no training cost (its ASHA did not count seconds); "
            "warm-start from it with --asha-time epochs"
        )


def _best_configurations(trials: list[FrozenTrial], direction, count: int) -> list[dict]:
    """The `count` best distinct configurations among the COMPLETE `trials`, by the
    primary objective."""
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    maximise = direction == optuna.study.StudyDirection.MAXIMIZE
    done.sort(key=lambda t: t.values[0], reverse=maximise)
    best: list[dict] = []
    for trial in done:
        if trial.params not in best:
            best.append(trial.params)
    return best[:count]


def sampler_seed(seed: int, run: str, alone: bool) -> int:
    """The seed of this run's sampler: `seed` for a study of its own, else one of its own.
    A warm-started or shared study with the same seed would otherwise draw the very
    configurations its source drew (TPE draws its start-up trials at random)."""
    if alone:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{run}".encode()).digest()[:4], "big")


def own_trials(study: optuna.Study, run: str, states=None) -> list[FrozenTrial]:
    """The trials that run `run` added to `study` (not warm-start copies, not another's)."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=states)
        if t.user_attrs.get(RUN_ATTR) == run and TUNE_ID_ATTR in t.user_attrs
    ]


def fail_unclaimed(study: optuna.Study, run: str, tune_ids: set[str]) -> int:
    """After a finished search, the trials of `run` that no Tune trial claimed (asked
    just before a crash, never handed to a trial after `--resume`) are FAIL, so that no
    trial stays RUNNING; returns how many."""
    unclaimed = [
        t
        for t in own_trials(study, run, states=(TrialState.RUNNING, TrialState.WAITING))
        if t.user_attrs[TUNE_ID_ATTR] not in tune_ids
    ]
    for trial in unclaimed:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(unclaimed)


# ---------------------------------------------------------------- where a run keeps its study


def ref_for_run(config: SearchConfig, run_dir: RunLocation) -> StudyRef:
    """Where the run's study is kept: --study-storage, else the run folder's study.db.
    SQLite needs a local disk: for a run folder in an object store or on a shared mount,
    the driver works on a local copy and puts it in the run folder (`store_copy`)."""
    name = config.study_name or config.name
    if config.study_storage:
        return StudyRef(config.study_storage, name)
    if _keeps_a_local_copy(config, run_dir):
        return StudyRef(sqlite_url(_local_study_file(run_dir)), name)
    return StudyRef.in_run_folder(run_dir.path, name)


def _keeps_a_local_copy(config: SearchConfig, run_dir: RunLocation) -> bool:
    return not config.study_storage and (config.shared_storage or not run_dir.is_local)


def _local_study_file(run_dir: RunLocation) -> Path:
    """This machine's working copy of a remote run folder's study.db."""
    key = hashlib.sha256(run_dir.uri.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "lstm-search-studies" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder / STUDY_DB


def store_copy(run_dir: RunLocation, config: SearchConfig) -> None:
    """A run folder in an object store or on a shared mount gets a copy of the study the
    driver kept locally (after every session, interrupted or not)."""
    local = _local_study_file(run_dir) if _keeps_a_local_copy(config, run_dir) else None
    if local is None or not local.exists() or not run_dir.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / STUDY_DB
        sqlite_snapshot(local, snapshot)
        run_dir.write_bytes(STUDY_DB, snapshot.read_bytes())


def fetch_copy(run_dir: RunLocation, config: SearchConfig) -> None:
    """Before a resume on another machine: the run folder's copy of the study becomes the
    local working copy. (Here, the working copy is as new as the run folder's or newer:
    a killed driver never stored it.)"""
    if not _keeps_a_local_copy(config, run_dir) or not run_dir.exists(STUDY_DB):
        return
    local = _local_study_file(run_dir)
    if not local.exists():
        local.write_bytes(run_dir.read_bytes(STUDY_DB))


def warm_start_sources(
    config: SearchConfig, run_dir: RunLocation, signature: dict
) -> list[tuple[str, optuna.Study]]:
    """--warm-start's runs and studies, opened and checked against this search."""
    sources = []
    for item in config.warm_start or []:
        study = load(_warm_start_ref(item, config, run_dir), f"--warm-start {item}")
        check_signature(study, signature, f"--warm-start {item}")
        if config.judges_on_seconds:  # its trials' epochs go on rungs by their cost
            check_costs(study, f"--warm-start {item}")
        sources.append((item, study))
    return sources


def _warm_start_ref(item: str, config: SearchConfig, run_dir: RunLocation) -> StudyRef:
    """A run folder (a path, or a run name under a local --storage-path), else a study
    of that name in --study-storage."""
    folders = [Path(item).expanduser()]
    if run_dir.is_local:
        folders.append(Path(run_dir.storage) / item)
    for folder in folders:
        if (folder / RUN_JSON).is_file():
            return ref_of_run(folder, RunRecord.read(folder))
    if config.study_storage:
        return StudyRef(config.study_storage, item)
    raise UserError(
        f"--warm-start {item}: no run folder there, and no --study-storage to find a study "
        "of that name in"
    )


def remove_leftover_copy(run_dir: RunLocation, config: SearchConfig) -> None:
    """A new run starts without the working copy an earlier run of its name left here."""
    if _keeps_a_local_copy(config, run_dir):
        for leftover in _local_study_file(run_dir).parent.glob(f"{STUDY_DB}*"):
            leftover.unlink()


def ref_of_run(run_dir: str | Path, info: RunRecord) -> StudyRef:
    """The study a run folder's run.json names: its `study.db`, or a database."""
    if info.study.storage is None:
        return StudyRef.in_run_folder(run_dir, info.study.name)
    return StudyRef(info.study.storage, info.study.name)


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy the SQLite database `source` into `target` consistently, even while another
    connection writes it (SQLite's online backup: it copies one committed state)."""
    import sqlite3

    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    with contextlib.closing(reader) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def without_password(url: str) -> str:
    with contextlib.suppress(Exception):
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    return url


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created...") off; the caller's verbosity back.
    (Also for the studies the analysis builds in memory.)"""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
