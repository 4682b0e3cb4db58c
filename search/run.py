"""`python -m search.run`: flags -> SearchConfig -> data -> Ray -> Tuner -> run folder."""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from search import cluster
from search import metrics as m
from search.config import SearchConfig, parse_args
from search.data import load_dataset
from search.errors import UserError
from search.progress import ProgressLine
from search.run_folder import (
    new_run_info,
    ranked,
    trials_table,
    write_run_info,
    write_test_split,
    write_trials,
)
from search.space import PARAMS

TOP_K = 5


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        return run(config)
    except UserError as exc:
        print(f"search.run: error: {exc}", file=sys.stderr)
        return 2


def run(config: SearchConfig) -> int:
    started = time.monotonic()
    if config.grace_epochs > config.max_epochs:
        raise UserError(
            f"--grace-epochs ({config.grace_epochs}) exceeds --max-epochs ({config.max_epochs})"
        )
    storage = Path(config.storage_path).expanduser().resolve()
    run_dir = storage / config.name
    if run_dir.exists() and not config.overwrite:
        raise UserError(
            f"run folder {run_dir} already exists; choose another --name or pass --overwrite"
        )
    if storage.exists() and not storage.is_dir():
        raise UserError(f"--storage-path {storage} is a file, not a folder")

    # Data before Ray: a bad data folder fails in a second, not after a cluster start.
    data = load_dataset(
        config.dataset, config.data_dir, download=config.download, seed=config.seed
    )

    cluster.connect(config.address)
    try:
        _check_resources(config)
        if run_dir.exists():  # --overwrite, and everything else has checked out
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        info = new_run_info(config, data.name, data.sizes())
        write_run_info(run_dir, info)
        write_test_split(run_dir, data.test)

        from search.tuner import build_tuner  # imports Ray Tune's heavy machinery

        progress = ProgressLine(config.trials, config.max_epochs, started=started)
        max_concurrent = config.max_concurrent or cluster.trial_slots(
            config.cpus_per_trial, config.gpus_per_trial
        )
        results = build_tuner(config, data, storage, [progress], max_concurrent).fit()

        table = trials_table(results, run_dir, config.max_epochs)
        write_trials(table, run_dir)
        info.update(
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            wall_seconds=round(time.monotonic() - started, 1),
            trial_counts=table["status"].value_counts().to_dict(),
        )
        write_run_info(run_dir, info)
    finally:
        cluster.shutdown()

    print(_summary(table, run_dir))
    return 0


def _check_resources(config: SearchConfig) -> None:
    """A trial that no node can hold would wait forever; say so instead."""
    for resource, wanted, flag in (
        ("CPU", config.cpus_per_trial, "--cpus-per-trial"),
        ("GPU", config.gpus_per_trial, "--gpus-per-trial"),
    ):
        available = cluster.largest_node(resource)
        if wanted > available:
            raise UserError(
                f"{flag} {wanted:g} but no node in the Ray cluster has more than "
                f"{available:g} {resource}(s)"
            )


def _summary(table: pd.DataFrame, run_dir: Path) -> str:
    counts = table["status"].value_counts()
    lines = [
        f"{len(table)} trials: " + ", ".join(f"{n} {status}" for status, n in counts.items()),
    ]
    best = ranked(table)
    if best.empty:
        lines.append("No trial finished an epoch; nothing to rank.")
    else:
        shown = best.head(TOP_K)[["trial_id", "label", *PARAMS, "epochs", m.VAL_ACC]]
        lines += [f"Top {len(shown)} by validation accuracy:", _format_table(shown)]
    lines.append(f"Run folder: {run_dir}")
    return "\n".join(lines)


def _format_table(table: pd.DataFrame) -> str:
    formatted = table.assign(
        dropout=table["dropout"].map("{:.2f}".format),
        forget_bias=table["forget_bias"].map("{:.2f}".format),
        lr=table["lr"].map("{:.2e}".format),
        val_acc=table[m.VAL_ACC].map("{:.4f}".format),
    )
    return formatted.to_string(index=False)


if __name__ == "__main__":
    sys.exit(main())
