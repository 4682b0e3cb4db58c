"""One search, from a SearchConfig: data -> Ray -> Tuner -> run folder.

`search.run` is the command line in front of it (and runs the report after it); this
module holds the heavy imports (torch, Ray, pandas), which the CLI loads only once the
flags are known to be good.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import os
import pickletools
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pandas as pd

from search import cluster, signals, tracking
from search import metrics as m
from search import study as st
from search.capacity import (
    Capacity,
    TrialShape,
    check_resources,
    check_storage_is_shared,
    measure,
    read_cluster_config,
    trial_slots,
)
from search.claim import CLAIM_FILE, claim
from search.config import SearchConfig
from search.data import Dataset, confirmation_folds, load_dataset
from search.errors import UserError
from search.faults import FOLDER_GONE, RESERVE_FLOOR_BYTES, DiskFault, watch
from search.faults import stop_cause as disk_stop_cause
from search.progress import ProgressLine
from search.run_folder import (
    STUDY_TRIAL,
    TOP_K,
    TUNER_STATE,
    TrialStatus,
    confirmed_text,
    ranked,
    write_best,
    write_test_split,
    write_trials,
)
from search.run_record import RUN_JSON, RunRecord, StudyRecord
from search.space import SearchSpace, format_param, read_points
from search.storage import RunLocation
from search.tracking import SearchEnd, Trackers
from search.trials import trials_table


class Interrupted(Exception):
    """The search stopped before all its trials finished; its state is saved."""


def interrupted_message(config: SearchConfig) -> tuple[str, str | None]:
    """What to tell a user whose search stopped early, and the command that continues it
    (None when nothing was saved)."""
    if RunLocation.open(config.storage_path, config.name).exists(TUNER_STATE):
        command = resume_command(config)
        return f"interrupted; state saved. Resume with: {command}", command
    return "interrupted; the search had not started; nothing was saved", None


def disk_fault_message(config: SearchConfig, cause: str) -> tuple[str, str | None]:
    """What to tell a user whose run folder's disk failed (`cause`, search.faults), and
    the command that continues the search once that is fixed (None when nothing was
    saved)."""
    run_dir = RunLocation.open(config.storage_path, config.name)
    if run_dir.exists(TUNER_STATE) or cause == FOLDER_GONE:
        command = resume_command(config)
        message = (
            f"stopped at {run_dir.display}: {cause}. The state saved before that is kept; "
            f"once that is fixed, resume with: {command}"
        )
        return message, command
    return f"not started at {run_dir.display}: {cause}. Nothing was saved", None


def run(config: SearchConfig) -> RunLocation:
    """Run (or resume) the search `config` describes; returns its run folder.

    Raises UserError for what the user can fix and Interrupted when the search stopped
    before every trial finished (its state is saved and `--resume` continues it).
    """
    interruptions = signals.interruptions()
    run_dir = RunLocation.open(config.storage_path, config.name)
    config, record = _open_run_folder(run_dir, config)
    prepared = _prepare(config, run_dir, record)
    with _connected(config, run_dir, prepared.stated_cluster) as capacity:
        tuner, record, trackers = _tuner(config, run_dir, prepared, record, capacity)
        # Before Tune takes Ctrl-C over: one that came while Ray started, and that Python
        # dropped, still stops the search.
        signals.raise_if_interrupted(since=interruptions)
        table = _search(tuner, config, run_dir, prepared.study_ref, record)
        outcome, winner = _outcome(table, config), None
        if outcome is not None:
            table, winner = _confirm_and_export(table, config, run_dir, prepared.data, record)
    trackers.finish(SearchEnd(table, winner, outcome is None, record.trial_counts))
    _tell(table, config, run_dir, record, prepared.space.params)
    if outcome is None:
        # Stopped by Ctrl-C, SIGTERM, or the watch over the run folder's disk.
        raise DiskFault(cause) if (cause := disk_stop_cause()) else Interrupted
    if outcome:
        print(f"search.run: {outcome}", file=sys.stderr)
    return run_dir


@dataclass
class Prepared:
    """What a search needs besides its flags, read and checked before Ray starts: a bad
    data file or study fails in a second, not after a cluster start."""

    data: Dataset
    space: SearchSpace
    extra_points: list[dict]  # --enqueue's, tried right after the tutorial's configuration
    signature: dict  # what the study records of this search (`study.signature`)
    study_ref: st.StudyRef
    warm_sources: list[tuple[str, optuna.Study]]  # --warm-start's studies
    database_study: optuna.Study | None  # a --study-storage study, prepared now
    stated_cluster: dict | None  # --cluster-config's autoscaler config


def _open_run_folder(
    run_dir: RunLocation, config: SearchConfig
) -> tuple[SearchConfig, RunRecord | None]:
    """A new run's folder must not exist (unless --overwrite); a resumed run's gives its
    flags and its record."""
    if config.resume:
        return _resumed(run_dir, config)
    if run_dir.exists() and not config.overwrite:
        raise UserError(
            f"run folder {run_dir.display} already exists; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --name"
        )
    return config, None


def _prepare(config: SearchConfig, run_dir: RunLocation, record: RunRecord | None) -> Prepared:
    if config.grace_epochs > config.max_epochs:
        raise UserError(
            f"--grace-epochs ({config.grace_epochs}) exceeds --max-epochs ({config.max_epochs})"
        )
    data = load_dataset(
        config.dataset,
        config.data_dir,
        download=config.download,
        seed=config.seed,
        cv_folds=config.cv_folds,
    )
    if record is not None and record.data["fingerprint"] != data.fingerprint:
        raise UserError(
            f"cannot resume {run_dir.display}: --dataset {data.name} holds other data "
            "than when the search started"
        )
    if config.confirm_top:  # fails now, not after the search, if the pool is too small
        confirmation_folds(data, config.confirm_folds, config.seed)
    # A resumed search keeps the space it started with, whatever its --space file says now.
    space = (
        SearchSpace.from_dict(record.space)
        if record is not None
        else SearchSpace.for_length(data.length, config.space)
    )
    signature = st.signature(_data_identity(data), config.loss, config.objective, space)
    new = not config.resume  # a resumed search has its points, sources and study already
    study_ref = st.ref_for_run(config, run_dir)
    return Prepared(
        data=data,
        space=space,
        extra_points=read_points(config.enqueue, space) if config.enqueue and new else [],
        signature=signature,
        study_ref=study_ref,
        warm_sources=st.warm_start_sources(config, run_dir, signature) if new else [],
        database_study=st.prepare(study_ref, signature) if config.study_storage and new else None,
        stated_cluster=_stated_cluster(config),
    )


def _stated_cluster(config: SearchConfig) -> dict | None:
    """What the user says the cluster may grow to (--cluster-config), read before Ray."""
    return read_cluster_config(config.cluster_config) if config.cluster_config else None


@contextlib.contextmanager
def _connected(
    config: SearchConfig, run_dir: RunLocation, stated_cluster: dict | None
) -> Iterator[Capacity]:
    """Ray connected, the cluster checked to hold a trial, and the run folder claimed for
    this search; on the way out, Ray shut down, the study stored and the claim released."""
    joined = cluster.connect(config.address)
    owner = None
    if joined and not (config.address or "").startswith("ray://"):
        cluster.watch_head(lambda address: _lost_cluster(config, address, owner))
    try:
        # A fresh local Ray has no autoscaler.
        capacity = (
            measure(config.autoscaler, stated_cluster) if joined else Capacity.of_alive_nodes()
        )
        check_resources(capacity, TrialShape(config.cpus_per_trial, config.gpus_per_trial))
        check_storage_is_shared(capacity, run_dir, config.shared_storage)
        _check_room(run_dir)
        owner = claim(run_dir)  # everything has checked out: the folder is this search's
        yield capacity
    finally:
        cluster.shutdown()
        if owner is not None:
            st.store_copy(run_dir, config)
            owner.release()


def _tuner(config, run_dir: RunLocation, prepared: Prepared, record, capacity: Capacity):
    """A resumed run's Tuner, restored; a new run's, built on its new folder and record."""
    from search.searcher import reconnect_study_to
    from search.tracking.callback import TrackingCallback
    from search.tuner import build_tuner, restore_tuner  # Ray Tune's heavy machinery

    if config.resume:
        _check_saved_state(run_dir)
        st.fetch_copy(run_dir, config)
        reconnect_study_to(prepared.study_ref.url)
        # The trials' side of tracking comes back with Tune's callbacks.
        trackers = _open_trackers(config, run_dir, record)
        return restore_tuner(run_dir, config, prepared.data), record, trackers
    record, study = _start_run_folder(config, run_dir, prepared)
    trackers = _open_trackers(config, run_dir, record)
    shape = TrialShape(config.cpus_per_trial, config.gpus_per_trial)
    progress = ProgressLine(
        config.trials, config.max_epochs, metric=record.metric, cluster_grows=capacity.grows
    )
    tracking = [TrackingCallback(trackers, config.max_epochs)] if trackers else []
    tuner = build_tuner(
        config,
        prepared.data,
        prepared.space,
        run_dir.storage,
        [progress, *tracking],
        config.max_concurrent or trial_slots(capacity, shape, config.trials),
        prepared.extra_points,
        study=prepared.study_ref,
        run=record.study.run,
        sampler_seed=record.study.sampler_seed,
        warm_curves=st.warm_curves(study) if prepared.warm_sources else None,
        unit_seconds=record.asha_unit_seconds,
    )
    return tuner, record, trackers


def _open_trackers(config: SearchConfig, run_dir: RunLocation, record: RunRecord) -> Trackers:
    """The --track trackers, each with the search's record opened (or, resumed, found
    again); what they need to find it later goes into run.json."""
    local_dir = Path(run_dir.path) if run_dir.is_local else None
    search = tracking.search_info(record, run_dir.display, local_dir)
    trackers = tracking.build(config.track or [], search, record.tracking)
    for tracker in trackers:
        tracker.check()  # what a tracker cannot follow is refused now, in one line
    if trackers:
        record.tracking |= trackers.start(resumed=config.resume)
        record.save(run_dir)
    return trackers


def _start_run_folder(
    config: SearchConfig, run_dir: RunLocation, prepared: Prepared
) -> tuple[RunRecord, optuna.Study]:
    """A new run's folder: emptied (--overwrite), its study opened and warm-started, the
    ASHA unit timed, run.json and the test split written."""
    if config.overwrite:
        run_dir.clear(keep=CLAIM_FILE)
    elif run_dir.entries() != [CLAIM_FILE]:  # made since `_open_run_folder` looked
        raise UserError(f"run folder {run_dir.display} already exists; choose another --name")
    data = prepared.data
    record = RunRecord.new(config, data.describe(), data.sizes(), prepared.space.to_dict())
    _hide_password(record, config)
    st.remove_leftover_copy(run_dir, config)
    # What the run's trials are marked with, in a study others may share.
    run = f"{config.name}@{record.started}"
    alone = not (config.study_storage or prepared.warm_sources)
    record.study = StudyRecord(
        # None: the run folder's study.db
        storage=st.without_password(config.study_storage) if config.study_storage else None,
        name=prepared.study_ref.name,
        run=run,
        sampler_seed=st.sampler_seed(config.seed, run, alone=alone),
    )
    study = prepared.database_study or st.prepare(prepared.study_ref, prepared.signature)
    if prepared.warm_sources:
        record.warm_start = st.warm_start(study, prepared.warm_sources, run)
    if config.judges_on_seconds:
        record.asha_unit_seconds = _asha_unit(config, data, prepared.space)
    record.save(run_dir)
    write_test_split(run_dir, data.test)
    return record, study


def _search(
    tuner, config: SearchConfig, run_dir: RunLocation, study_ref: st.StudyRef, record: RunRecord
) -> pd.DataFrame:
    """Run the trials; trials.csv and run.json then say what they did."""
    session_started = time.monotonic()
    watch(run_dir.path if run_dir.is_local else None)
    results = tuner.fit()
    table = trials_table(results, run_dir, config.max_epochs, record.metric)
    table = _with_study_trials(table, study_ref, record.study.run)
    write_trials(table, run_dir)  # before confirming: an interruption loses nothing
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    # Summed over sessions, so a resumed run reports its whole search time.
    record.wall_seconds = round(record.wall_seconds + time.monotonic() - session_started, 1)
    record.trial_counts = table["status"].value_counts().to_dict()
    # What trained the trials: a GPU search on nodes without CUDA says "cpu" here.
    record.devices = table[m.DEVICE].value_counts().to_dict()
    record.sessions += 1
    record.save(run_dir)
    return table


def _confirm_and_export(
    table: pd.DataFrame, config: SearchConfig, run_dir: RunLocation, data, record: RunRecord
) -> tuple[pd.DataFrame, dict | None]:
    """The best trials retrained on other folds (--confirm-top), and the winner in best/
    (and what best/config.json says of it; None when no trial can win)."""
    fold_models = None
    if config.confirm_top:
        confirmed = _confirm(table, data, config, record)
        table, fold_models = confirmed.table, confirmed.models
        write_trials(table, run_dir)
        record.save(run_dir)
    winner = write_best(run_dir, table, fold_models, record.metric, list(data.classes))
    return table, winner


def _tell(table, config: SearchConfig, run_dir: RunLocation, record: RunRecord, params) -> None:
    """The summary on stdout; on stderr, GPU trials that trained on a CPU."""
    print(_summary(table, run_dir.display, record.metric, params))
    if config.gpus_per_trial and (on_cpu := record.devices.get("cpu", 0)):
        print(
            f"search.run: {on_cpu} trial(s) had a GPU share but no CUDA device on their node "
            "and trained on the CPU (trials.csv, column device)",
            file=sys.stderr,
        )


EXIT_LOST_CLUSTER = 69  # sysexits' EX_UNAVAILABLE


def _lost_cluster(config: SearchConfig, address: str, owner) -> None:
    """The joined cluster's head is gone (search.cluster.watch_head): say so in one line
    with the resume command, and end the process before Ray ends it without a word. The
    run folder keeps Tune's last saved state, as after a killed driver."""
    if owner is not None:
        with contextlib.suppress(OSError):
            owner.release()
    fresh_line = "\n" if sys.stderr.isatty() else ""  # not on the progress line's end
    print(
        f"{fresh_line}search.run: lost the Ray cluster: its head at {address} stopped "
        "answering. The state saved before that is kept; once the cluster is back, resume "
        f"with: {resume_command(config)} (on another cluster, with its --address)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(EXIT_LOST_CLUSTER)


def _asha_unit(config: SearchConfig, data, space: SearchSpace) -> float:
    """ASHA's unit under --asha-time seconds, timed now (a resumed search keeps its
    scheduler, and with it the unit it started with)."""
    from search.cost import unit_seconds
    from search.trainable import TrialData

    seconds = unit_seconds(
        TrialData.of(data),
        space.seed_config,
        config.cpus_per_trial,
        config.gpus_per_trial,
        config.seed,
    )
    unit = round(seconds, 3)  # rounded once, so the line printed and run.json agree
    print(f"ASHA counts training seconds in units of {unit:.3f} s (one tutorial epoch here)")
    return unit


def _data_identity(data) -> str:
    """What a study records of the data: its name and what its files hold."""
    return f"{data.name}@{data.fingerprint}" if data.fingerprint != data.name else data.name


def _with_study_trials(table: pd.DataFrame, ref: st.StudyRef, run: str) -> pd.DataFrame:
    """`table` with each trial's number in the study. Once the search is over, a trial of
    this run that no Tune trial holds (asked just before a crash) is FAIL, not RUNNING."""
    study = st.load(ref)
    if not (table["status"] == TrialStatus.UNFINISHED).any():
        st.fail_unclaimed(study, run, set(table["trial_id"]))
    numbers = {t.user_attrs[st.TUNE_ID_ATTR]: t.number for t in st.own_trials(study, run)}
    return table.assign(**{STUDY_TRIAL: table["trial_id"].map(numbers).astype("Int64")})


def _hide_password(record: RunRecord, config: SearchConfig) -> None:
    """run.json keeps no database password (a --resume gives --study-storage again)."""
    if config.study_storage:
        shown = st.without_password(config.study_storage)
        record.flags["study_storage"] = shown
        record.command = record.command.replace(config.study_storage, shown)


def _outcome(table: pd.DataFrame, config: SearchConfig) -> str | None:
    """None if the search was interrupted; else "" or what ended it before --trials."""
    if (table["status"] == TrialStatus.UNFINISHED).any():
        return None
    if len(table) >= config.trials:
        return ""
    if config.time_budget is not None:
        # The searcher stopped proposing: the budget could not hold another trial.
        return f"time budget reached after {len(table)} of {config.trials} trials"
    return None


def _confirm(table: pd.DataFrame, data, config: SearchConfig, record: RunRecord):
    """Retrain the best configurations by the run's metric on other folds
    (search.confirm); timed in run.json."""
    from search.confirm import confirm

    metric = record.metric
    started = time.monotonic()
    top = min(config.confirm_top, len(ranked(table, metric)))
    folds = len(confirmation_folds(data, config.confirm_folds, config.seed))
    print(f"Confirming the best {top} on {folds} other folds each...", file=sys.stderr)
    confirmed = confirm(
        table,
        data,
        top=config.confirm_top,
        folds=config.confirm_folds,
        seed=config.seed,
        cpus=config.cpus_per_trial,
        gpus=config.gpus_per_trial,
        metric=metric,
        loss=config.loss,
    )
    record.confirm_seconds = round(time.monotonic() - started, 1)
    record.confirm_busy_seconds = round(confirmed.busy_seconds, 1)
    return confirmed


def _resumed(run_dir: RunLocation, given: SearchConfig) -> tuple[SearchConfig, RunRecord]:
    """For --resume: the flags the run was started with (only where it runs and stores
    may change), and the run's record."""
    if given.overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if not (run_dir.exists(TUNER_STATE) and run_dir.exists(RUN_JSON)):
        raise UserError(f"nothing to resume: {run_dir.display} is not a search run folder")
    record = RunRecord.from_json(run_dir.read_bytes(RUN_JSON), run_dir.display)
    try:
        config = SearchConfig(**record.flags)
    except (ValueError, TypeError) as exc:
        damaged = f"{run_dir.display}/{RUN_JSON}"
        raise UserError(f"cannot resume: {damaged} is damaged ({exc})") from None
    config = dataclasses.replace(
        config,
        resume=True,
        address=given.address,
        storage_path=given.storage_path,
        name=given.name,
        shared_storage=given.shared_storage,
        autoscaler=given.autoscaler,
        cluster_config=given.cluster_config,
        study_storage=given.study_storage or config.study_storage,
    )
    if not given.study_storage and "***" in (config.study_storage or ""):
        raise UserError(
            "run.json keeps no database password: resume with --study-storage URL again"
        )
    return config, record


def resume_command(config: SearchConfig) -> str:
    """The shell command that continues the search `config` started."""
    storage = config.storage_path
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    args = ["python", "-m", "search.run", "--name", config.name, "--storage-path", storage]
    if config.address:
        args += ["--address", config.address]
    if config.shared_storage:
        args.append("--shared-storage")
    if config.autoscaler:
        args.append("--autoscaler")
    if config.cluster_config:
        args += ["--cluster-config", str(config.cluster_config)]
    if config.study_storage:  # its password, if any, left for the user to fill in
        args += ["--study-storage", st.without_password(config.study_storage)]
    return shlex.join([*args, "--resume"])


def _check_room(run_dir: RunLocation) -> None:
    """A run folder on a disk without room for a search fails now, not in its middle."""
    if not run_dir.is_local:
        return
    folder = Path(run_dir.path)
    while not folder.exists():  # the folders still to make go on the disk of the first made
        folder = folder.parent
    disk = os.statvfs(folder)
    free = disk.f_bavail * disk.f_frsize
    if free < RESERVE_FLOOR_BYTES:
        raise DiskFault(
            f"the disk is full ({free / 2**20:.1f} MB free, "
            f"a search needs {RESERVE_FLOOR_BYTES / 2**20:.0f} MB to start)"
        )


# The files a resume reads first (Tune's names; of each, the newest).
SAVED_STATE = (
    "tuner.pkl",
    "experiment_state-*.json",
    "search_gen_state-*.json",
    "searcher-state-*.pkl",
)


def _check_saved_state(run_dir: RunLocation) -> None:
    """Tune's saved state, whole. One cut short (written while the disk filled) would
    make Tune log an error and resume nothing, waiting forever."""
    names = run_dir.entries()
    for pattern in SAVED_STATE:
        matching = sorted(n for n in names if fnmatch.fnmatch(n, pattern))
        if not matching:
            continue
        newest = matching[-1]
        data = run_dir.read_bytes(newest)
        try:
            if data.startswith(b"\x80"):  # a pickle (whatever its name says)
                for _ in pickletools.genops(data):  # read through, not run
                    pass
            else:
                json.loads(data)
        except ValueError as exc:
            raise UserError(
                f"cannot resume {run_dir.display}: its saved state {newest} is damaged ({exc}); "
                "it may have been written while the disk was full"
            ) from None


def _summary(table: pd.DataFrame, run_dir: str, metric: str, params: tuple[str, ...]) -> str:
    counts = table["status"].value_counts()
    lines = [
        f"{len(table)} trials: " + ", ".join(f"{n} {status}" for status, n in counts.items()),
    ]
    best = ranked(table, metric)
    if best.empty:
        lines.append("No trial finished an epoch; nothing to rank.")
    else:
        shown = best.head(TOP_K)
        figure = m.METRIC_WORDS[metric]
        order = (
            f"by confirmed {figure} (95% interval), then"
            if shown[m.CONFIRMED_OF[metric]].notna().any()
            else "by"
        )
        lines += [
            f"Top {len(shown)} {order} validation {figure}:",
            _format_table(shown, metric, params),
        ]
    lines.append(f"Run folder: {run_dir}")
    return "\n".join(lines)


def _format_table(table: pd.DataFrame, metric: str, params: tuple[str, ...]) -> str:
    columns = {
        "trial_id": table["trial_id"],
        "label": table["label"],
        **{name: table[name].map(lambda v, name=name: format_param(name, v)) for name in params},
        "epochs": table["epochs"],
        m.VAL_ACC: table[m.VAL_ACC].map("{:.4f}".format),
        "area": table[m.VAL_AREA].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
        "HM": table[m.VAL_HM].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
    }
    if table[m.CONFIRMED_OF[metric]].notna().any():
        columns["confirmed"] = [confirmed_text(row, metric) for _, row in table.iterrows()]
    return pd.DataFrame(columns).to_string(index=False)
