"""One search, from a SearchConfig: data -> Ray -> Tuner -> run folder.

`search.run` is the command line in front of it (and runs the report after it); this
module holds the heavy imports (torch, Ray, pandas), which the CLI loads only once the
flags are known to be good.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import json
import os
import pickletools
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from search import cluster
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
from search.data import confirmation_folds, load_dataset
from search.errors import UserError
from search.faults import FOLDER_GONE, RESERVE_FLOOR_BYTES, DiskFault, watch
from search.faults import stop_cause as disk_stop_cause
from search.progress import ProgressLine
from search.run_folder import (
    RUN_JSON,
    STUDY_TRIAL,
    TOP_K,
    TUNER_STATE,
    TrialStatus,
    check_format,
    confirmed_text,
    new_run_info,
    ranked,
    read_run_info,
    write_best,
    write_run_info,
    write_test_split,
    write_trials,
)
from search.space import SearchSpace, format_param, read_points
from search.storage import RunLocation
from search.trials import trials_table


class Interrupted(Exception):
    """The search stopped before all its trials finished; its state is saved."""


def interrupted_message(config: SearchConfig) -> str:
    """What to tell a user whose search stopped early: how to continue it, if it can be."""
    if RunLocation.open(config.storage_path, config.name).exists(TUNER_STATE):
        return f"interrupted; state saved. Resume with: {_resume_command(config)}"
    return "interrupted; the search had not started; nothing was saved"


def disk_fault_message(config: SearchConfig, cause: str) -> str:
    """What to tell a user whose run folder's disk failed (`cause`, search.faults)."""
    run_dir = RunLocation.open(config.storage_path, config.name)
    if run_dir.exists(TUNER_STATE) or cause == FOLDER_GONE:
        return (
            f"stopped at {run_dir.display}: {cause}. The state saved before that is kept; "
            f"once that is fixed, resume with: {_resume_command(config)}"
        )
    return f"not started at {run_dir.display}: {cause}. Nothing was saved"


def run(config: SearchConfig) -> RunLocation:
    """Run (or resume) the search `config` describes; returns its run folder.

    Raises UserError for what the user can fix and Interrupted when the search stopped
    before every trial finished (its state is saved and `--resume` continues it).
    """
    run_dir = RunLocation.open(config.storage_path, config.name)
    if config.resume:
        config, info = _resumed(run_dir, config)
    elif run_dir.exists() and not config.overwrite:
        raise UserError(
            f"run folder {run_dir.display} already exists; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --name"
        )
    if config.grace_epochs > config.max_epochs:
        raise UserError(
            f"--grace-epochs ({config.grace_epochs}) exceeds --max-epochs ({config.max_epochs})"
        )
    metric = m.primary_metric(config.objective)  # what the run ranks and confirms by

    # Data before Ray: a bad data file fails in a second, not after a cluster start.
    data = load_dataset(
        config.dataset,
        config.data_dir,
        download=config.download,
        seed=config.seed,
        cv_folds=config.cv_folds,
    )
    if config.resume:
        _check_same_data(run_dir, info, data)
    space = SearchSpace.for_length(data.length)
    # Read now, so a bad file fails before Ray starts; a resumed searcher has its own.
    extra_points = (
        read_points(config.enqueue, space) if config.enqueue and not config.resume else []
    )
    # What the user says the cluster may grow to, read now: a bad file fails before Ray.
    stated = read_cluster_config(config.cluster_config) if config.cluster_config else None
    if config.confirm_top:
        # Fails now, not after the search, if the pool cannot hold that many folds.
        confirmation_folds(data, config.confirm_folds, config.seed)
    # The study's storage and the warm-start sources, checked before anything is written.
    signature = st.signature(_data_identity(data), config.loss, config.objective, space)
    study_ref = _study_ref(config, run_dir)
    warm_sources = [] if config.resume else _warm_start_sources(config, run_dir, signature)
    # A database's study now; the run folder's own once the folder exists.
    study = (
        st.prepare(study_ref, signature) if config.study_storage and not config.resume else None
    )

    joined = cluster.connect(config.address)
    owner = None
    if joined and not (config.address or "").startswith("ray://"):
        cluster.watch_head(lambda address: _lost_cluster(config, address, owner))
    try:
        # A fresh local Ray has no autoscaler.
        capacity = measure(config.autoscaler, stated) if joined else Capacity.of_alive_nodes()
        shape = TrialShape(config.cpus_per_trial, config.gpus_per_trial)
        check_resources(capacity, shape)
        check_storage_is_shared(capacity, run_dir, config.shared_storage)
        _check_room(run_dir)
        from search.searcher import reconnect_study_to
        from search.tuner import build_tuner, restore_tuner  # Ray Tune's heavy machinery

        # Everything has checked out: the run folder becomes this search's alone.
        owner = claim(run_dir)
        if config.resume:
            _check_saved_state(run_dir)
            _fetch_study(run_dir, config)
            reconnect_study_to(study_ref.url)
            tuner = restore_tuner(run_dir, config, data)
        else:
            if config.overwrite:
                run_dir.clear(keep=CLAIM_FILE)
            elif run_dir.entries() != [CLAIM_FILE]:  # made since the check above
                raise UserError(
                    f"run folder {run_dir.display} already exists; choose another --name"
                )
            info = new_run_info(config, data.describe(), data.sizes(), space.to_dict())
            info = _hide_password(info, config)
            study = _start_study(config, run_dir, info, study, study_ref, signature, warm_sources)
            unit = _asha_unit(config, data, space) if config.judges_on_seconds else None
            info["asha_unit_seconds"] = unit
            write_run_info(run_dir, info)
            write_test_split(run_dir, data.test)
            progress = ProgressLine(
                config.trials, config.max_epochs, metric=metric, cluster_grows=capacity.grows
            )
            max_concurrent = config.max_concurrent or trial_slots(capacity, shape, config.trials)
            tuner = build_tuner(
                config,
                data,
                space,
                run_dir.storage,
                [progress],
                max_concurrent,
                extra_points,
                study=study_ref,
                run=info["study"]["run"],
                sampler_seed=info["study"]["sampler_seed"],
                warm_curves=st.warm_curves(study) if warm_sources else None,
                unit_seconds=unit,
            )

        session_started = time.monotonic()
        watch(run_dir.path if run_dir.is_local else None)
        results = tuner.fit()
        table = trials_table(results, run_dir, config.max_epochs, metric)
        table = _with_study_trials(table, study_ref, info["study"]["run"])
        write_trials(table, run_dir)  # before confirming: an interruption loses nothing
        info.update(
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            # Summed over sessions, so a resumed run reports its whole search time.
            wall_seconds=round(
                info.get("wall_seconds", 0.0) + time.monotonic() - session_started, 1
            ),
            trial_counts=table["status"].value_counts().to_dict(),
            # What trained the trials: a GPU search on nodes without CUDA says "cpu" here.
            devices=table[m.DEVICE].value_counts().to_dict(),
            sessions=info.get("sessions", 0) + 1,
        )
        write_run_info(run_dir, info)
        outcome = _outcome(table, config)
        fold_models = None
        if outcome is not None and config.confirm_top:
            confirmed = _confirm(table, data, config, info, metric)
            table, fold_models = confirmed.table, confirmed.models
            write_trials(table, run_dir)
            write_run_info(run_dir, info)
        if outcome is not None:
            write_best(run_dir, table, fold_models, metric, list(data.classes))
    finally:
        cluster.shutdown()
        if owner is not None:
            _store_study(run_dir, config)
            owner.release()

    print(_summary(table, run_dir.display, metric, space.params))
    if config.gpus_per_trial and (on_cpu := info["devices"].get("cpu", 0)):
        print(
            f"search.run: {on_cpu} trial(s) had a GPU share but no CUDA device on their node "
            "and trained on the CPU (trials.csv, column device)",
            file=sys.stderr,
        )
    if outcome is None:
        # Stopped by Ctrl-C, SIGTERM, or the watch over the run folder's disk.
        raise DiskFault(cause) if (cause := disk_stop_cause()) else Interrupted
    if outcome:
        print(f"search.run: {outcome}", file=sys.stderr)
    return run_dir


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
        f"with: {_resume_command(config)} (on another cluster, with its --address)",
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


def _check_same_data(run_dir: RunLocation, info: dict, data) -> None:
    """A resumed search trains on the data it started with, or not at all."""
    if info["data"]["fingerprint"] != data.fingerprint:
        raise UserError(
            f"cannot resume {run_dir.display}: --dataset {data.name} holds other data "
            "than when the search started"
        )


def _start_study(
    config: SearchConfig,
    run_dir: RunLocation,
    info: dict,
    study,
    ref: st.StudyRef,
    signature: dict,
    warm_sources: list,
):
    """A new run's study (`study` if already prepared, else created or joined now),
    warm-started, and recorded in `info`."""
    if _keeps_a_local_copy(config, run_dir):  # a working copy left by an earlier run
        for leftover in _local_study_file(run_dir).parent.glob(f"{st.STUDY_DB}*"):
            leftover.unlink()
    # What the run's trials are marked with, in a study others may share.
    run = f"{config.name}@{info['started']}"
    info["study"] = {
        # None: the run folder's study.db
        "storage": st.without_password(config.study_storage) if config.study_storage else None,
        "name": ref.name,
        "run": run,
        "sampler_seed": st.sampler_seed(
            config.seed, run, alone=not (config.study_storage or warm_sources)
        ),
    }
    study = study or st.prepare(ref, signature)
    if warm_sources:
        info["warm_start"] = st.warm_start(study, warm_sources, run)
    return study


def _study_ref(config: SearchConfig, run_dir: RunLocation) -> st.StudyRef:
    """Where the run's study is kept: --study-storage, else the run folder's study.db.
    SQLite needs a local disk: for a run folder in an object store or on a shared mount,
    the driver works on a local copy and puts it in the run folder (`_store_study`)."""
    name = config.study_name or config.name
    if config.study_storage:
        return st.StudyRef(config.study_storage, name)
    if _keeps_a_local_copy(config, run_dir):
        return st.StudyRef(st.sqlite_url(_local_study_file(run_dir)), name)
    return st.StudyRef.in_run_folder(run_dir.path, name)


def _keeps_a_local_copy(config: SearchConfig, run_dir: RunLocation) -> bool:
    return not config.study_storage and (config.shared_storage or not run_dir.is_local)


def _local_study_file(run_dir: RunLocation) -> Path:
    """This machine's working copy of a remote run folder's study.db."""
    key = hashlib.sha256(run_dir.uri.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "lstm-search-studies" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder / st.STUDY_DB


def _store_study(run_dir: RunLocation, config: SearchConfig) -> None:
    """A run folder in an object store or on a shared mount gets a copy of the study the
    driver kept locally (after every session, interrupted or not)."""
    local = _local_study_file(run_dir) if _keeps_a_local_copy(config, run_dir) else None
    if local is None or not local.exists() or not run_dir.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / st.STUDY_DB
        st.sqlite_snapshot(local, snapshot)
        run_dir.write_bytes(st.STUDY_DB, snapshot.read_bytes())


def _fetch_study(run_dir: RunLocation, config: SearchConfig) -> None:
    """Before a resume on another machine: the run folder's copy of the study becomes the
    local working copy. (Here, the working copy is as new as the run folder's or newer:
    a killed driver never stored it.)"""
    if not _keeps_a_local_copy(config, run_dir) or not run_dir.exists(st.STUDY_DB):
        return
    local = _local_study_file(run_dir)
    if not local.exists():
        local.write_bytes(run_dir.read_bytes(st.STUDY_DB))


def _warm_start_sources(
    config: SearchConfig, run_dir: RunLocation, signature: dict
) -> list[tuple[str, object]]:
    """--warm-start's runs and studies, opened and checked against this search."""
    sources = []
    for item in config.warm_start or []:
        study = st.load(_warm_start_ref(item, config, run_dir), f"--warm-start {item}")
        st.check_signature(study, signature, f"--warm-start {item}")
        if config.judges_on_seconds:  # its trials' epochs go on rungs by their cost
            st.check_costs(study, f"--warm-start {item}")
        sources.append((item, study))
    return sources


def _warm_start_ref(item: str, config: SearchConfig, run_dir: RunLocation) -> st.StudyRef:
    """A run folder (a path, or a run name under a local --storage-path), else a study
    of that name in --study-storage."""
    folders = [Path(item).expanduser()]
    if run_dir.is_local:
        folders.append(Path(run_dir.storage) / item)
    for folder in folders:
        if (folder / RUN_JSON).is_file():
            info = read_run_info(folder)
            check_format(info, f"--warm-start {item}")
            return st.ref_of_run(folder, info)
    if config.study_storage:
        return st.StudyRef(config.study_storage, item)
    raise UserError(
        f"--warm-start {item}: no run folder there, and no --study-storage to find a study "
        "of that name in"
    )


def _with_study_trials(table: pd.DataFrame, ref: st.StudyRef, run: str) -> pd.DataFrame:
    """`table` with each trial's number in the study. Once the search is over, a trial of
    this run that no Tune trial holds (asked just before a crash) is FAIL, not RUNNING."""
    study = st.load(ref)
    if not (table["status"] == TrialStatus.UNFINISHED).any():
        st.fail_unclaimed(study, run, set(table["trial_id"]))
    numbers = {t.user_attrs[st.TUNE_ID_ATTR]: t.number for t in st.own_trials(study, run)}
    return table.assign(**{STUDY_TRIAL: table["trial_id"].map(numbers).astype("Int64")})


def _hide_password(info: dict, config: SearchConfig) -> dict:
    """run.json keeps no database password (a --resume gives --study-storage again)."""
    if config.study_storage:
        shown = st.without_password(config.study_storage)
        info["flags"]["study_storage"] = shown
        info["command"] = info["command"].replace(config.study_storage, shown)
    return info


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


def _confirm(table: pd.DataFrame, data, config: SearchConfig, info: dict, metric: str):
    """Retrain the best configurations by `metric` on other folds (search.confirm); timed
    in run.json."""
    from search.confirm import confirm

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
    info["confirm_seconds"] = round(time.monotonic() - started, 1)
    info["confirm_busy_seconds"] = round(confirmed.busy_seconds, 1)
    return confirmed


def _resumed(run_dir: RunLocation, given: SearchConfig) -> tuple[SearchConfig, dict]:
    """For --resume: the flags the run was started with (only where it runs and stores
    may change), and the run's run.json."""
    if given.overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if not (run_dir.exists(TUNER_STATE) and run_dir.exists(RUN_JSON)):
        raise UserError(f"nothing to resume: {run_dir.display} is not a search run folder")
    try:
        info = json.loads(run_dir.read_bytes(RUN_JSON))
    except ValueError as exc:
        raise UserError(
            f"cannot resume: {run_dir.display}/{RUN_JSON} is damaged ({exc})"
        ) from None
    check_format(info, run_dir.display)
    try:
        known = {f.name for f in dataclasses.fields(SearchConfig)}
        config = SearchConfig(**{k: v for k, v in info["flags"].items() if k in known})
    except (ValueError, KeyError, TypeError) as exc:
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
    return config, info


def _resume_command(config: SearchConfig) -> str:
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
