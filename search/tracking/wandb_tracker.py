"""Weights & Biases (`--track wandb`, `--track wandb=PROJECT`): a group per search, a run
per trial, and a run for the search itself.

The project is PROJECT, else $WANDB_PROJECT, else "lstm-search"; the group is the
search's name and when it started (`NAME@2026-12-06T16:59:36`). Each trial's run (job
type "trial", named after the trial's folder) holds its hyperparameters (config), every
epoch's figures (step = epoch) and, in its summary, its outcome (completed, stopped,
diverged, failed, unfinished) and last figures; a failed or unfinished trial's run ends
with a non-zero exit code (W&B shows it failed). The search's run (job type "search") is
written as each session ends: its flags, dataset and command (config), its trial counts
and winner (summary), and `best/` as a model artifact. The report is not uploaded: the
search's run names the run folder (config `run_folder`) that holds it.

Run ids are the search's key (kept in run.json with the project and the group) and the
trial's id, and runs are opened with resume="allow", so a `--resume` continues the same
runs. In offline mode (WANDB_MODE=offline) the runs are written in the run folder's
`wandb/`, each session's part of a run in a folder of its own; `wandb beta sync
RUN_FOLDER/wandb` uploads the parts of a run as one run. An offline part does not know
the epochs of the parts before it: those Tune replays after a killed driver (from the
trial's last checkpoint) are in both. wandb writes a part to disk every 15 seconds and
when it ends: a killed driver loses the seconds before.

The runs are made side by side (reinit="create_new"), leaving `wandb.run` and a
notebook's own runs alone, and quietly (no banners between the search's progress lines).
They record neither the console nor system metrics: both are the driver's, not a trial's.
"""

from __future__ import annotations

import os
import re
import secrets
import time

from search.errors import UserError
from search.run_folder import BEST_CONFIG, BEST_MODEL, TrialStatus
from search.tracking import SearchEnd, Tracker

PROJECT = "lstm-search"  # unless --track wandb=PROJECT or WANDB_PROJECT says another
SEARCH = "search"  # the search's run's key, in place of a trial id
# A run's exit code by its trial's outcome; W&B shows a non-zero one as failed. A trial
# stopped by ASHA or diverged ended normally; an unfinished one did not (the search was
# interrupted; --resume continues its run).
EXIT_CODE = {
    TrialStatus.COMPLETED: 0,
    TrialStatus.STOPPED: 0,
    TrialStatus.DIVERGED: 0,
    TrialStatus.FAILED: 1,
    TrialStatus.UNFINISHED: 1,
}
# W&B's "online" modes, which need an API key.
ONLINE = ("online", "run", "shared")
# How long a run's start or end may wait for a W&B server before it raises (wandb's own
# defaults are 90 s and for ever): a server that stops answering costs the search this,
# once, and the tracking. What was not uploaded stays on disk for `wandb sync`.
SERVER_TIMEOUT = 60.0


class WandbTracker(Tracker):
    kind = "wandb"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._runs: dict = {}  # trial id -> its run, open in this session
        self._last_epochs: dict[str, int] = {}  # trial id -> the last epoch it logged

    def __getstate__(self) -> dict:
        # Tune pickles this with its callbacks; a run (a connection to wandb's service)
        # is not state: a trial's next start opens its run again.
        return {**self.__dict__, "_runs": {}, "_last_epochs": {}}

    # ------------------------------------------------------------ the search's side

    def check(self) -> None:
        import wandb

        try:  # a project name W&B refuses would stop the tracking at the first trial
            wandb.Settings(project=self._project())
        except wandb.errors.UsageError as exc:
            raise UserError(f"--track wandb: {exc}") from None
        # Without an API key, wandb.init asks for one at the terminal: the search would
        # wait at its first trial for an answer. Refused now instead (offline needs none).
        mode = wandb.setup().settings.mode  # as wandb.init finds it: env, settings files
        if mode in ONLINE and not wandb.login(prompt=False, verify=False):
            raise UserError(
                "--track wandb: no W&B API key; run `wandb login`, set WANDB_API_KEY, "
                "or track offline with WANDB_MODE=offline (`wandb beta sync` uploads later)"
            )

    def start(self, resumed: bool) -> dict:
        if not self.state.get("group"):  # a new search; a resumed one keeps its own
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.state = {
                "project": self._project(),
                "group": f"{self.search.name}@{started}",
                "key": secrets.token_hex(4),  # two searches of a name in one second differ
            }
        return self.state

    def finish(self, end: SearchEnd) -> None:
        # Trials still open here ended with the session: their outcome is the table's.
        outcomes = dict(zip(end.table["trial_id"], end.table["status"], strict=True))
        for trial_id in list(self._runs):
            self._end(trial_id, outcomes.get(trial_id, TrialStatus.UNFINISHED), {})
        search = self.search
        run = self._open(
            SEARCH,
            name=search.name,
            job_type="search",
            config={
                "flags": search.flags,
                "dataset": search.dataset,
                "command": search.command,
                "run_folder": search.location,
                "metric": search.metric,
            },
            allow_val_change=True,  # a resumed session's flags may differ (--resume)
        )
        summary = {f"trials_{outcome}": n for outcome, n in end.counts.items()}
        summary["interrupted"] = end.interrupted
        if end.winner is not None:
            winner = end.winner
            summary["winner"] = _winner(winner) | {"run_id": self.run_id(winner["trial_id"])}
            if search.local_dir is not None:
                import wandb

                # best/ is written once, as the search ends: W&B keeps a reference to
                # the files in the run folder (immutable) instead of a copy of its own.
                best = wandb.Artifact(_name(f"{search.name}-best"), type="model")
                for path in (BEST_MODEL, BEST_CONFIG):
                    best.add_file(str(search.local_dir / path), policy="immutable")
                run.log_artifact(best)
        run.summary.update(summary)
        run.finish(exit_code=1 if end.interrupted else 0)

    # ------------------------------------------------------------ the trials' side

    def trial_started(self, trial_id: str, name: str, hyperparameters: dict) -> None:
        if trial_id in self._runs:  # a retry in this session: its run is open still
            return
        run = self._open(trial_id, name=name, job_type="trial", config=hyperparameters)
        self._runs[trial_id] = run
        # A resumed run (online) has its last epoch in its summary; an offline one starts
        # afresh in a folder of its own.
        self._last_epochs[trial_id] = int(run.summary.get("epoch", 0))

    def epoch(self, trial_id: str, epoch: int, figures: dict[str, float]) -> None:
        run = self._runs.get(trial_id)
        if run is None or epoch <= self._last_epochs.get(trial_id, 0):
            # An epoch it has logged already: Tune replays those after a retry or a
            # killed driver, from the checkpoint before them (and W&B's steps must grow).
            return
        self._last_epochs[trial_id] = epoch
        run.log({**figures, "epoch": epoch}, step=epoch)

    def trial_ended(self, trial_id: str, outcome: str, figures: dict[str, float]) -> None:
        self._end(trial_id, outcome, figures)

    def close(self) -> None:
        # Runs still open when a session ends without `finish` (a tracker left out, Tune
        # stopped) are its unfinished trials.
        for trial_id in list(self._runs):
            self._end(trial_id, TrialStatus.UNFINISHED, {})

    # ------------------------------------------------------------ helpers

    def run_id(self, trial_id: str) -> str:
        """A trial's run id (or the search's, `SEARCH`'s): the search's key and the trial's
        id, in the characters W&B allows."""
        return _name(f"{self.state['key']}-{trial_id}")

    def _project(self) -> str:
        """Resolved once, at the start, and kept: a resume finds the same project."""
        return (
            self.state.get("project")
            or self.spec.value
            or os.environ.get("WANDB_PROJECT")
            or PROJECT
        )

    def _open(self, key: str, **init):
        import wandb

        return wandb.init(
            project=self.state["project"],
            group=self.state["group"],
            id=self.run_id(key),
            resume="allow",
            reinit="create_new",
            dir=str(self.search.local_dir) if self.search.local_dir else None,
            settings=wandb.Settings(
                silent=True,
                console="off",
                x_disable_stats=True,
                init_timeout=SERVER_TIMEOUT,
                finish_timeout=SERVER_TIMEOUT,
                finish_timeout_raises=True,
            ),
            **init,
        )

    def _end(self, trial_id: str, outcome: str, figures: dict[str, float]) -> None:
        run = self._runs.pop(trial_id, None)
        self._last_epochs.pop(trial_id, None)
        if run is not None:
            run.summary.update({**figures, "outcome": str(outcome)})
            run.finish(exit_code=EXIT_CODE[TrialStatus(outcome)])


def _winner(winner: dict) -> dict:
    """best/config.json as the search's summary: its trial, why it won, its
    hyperparameters and figures."""
    plain = ("trial_id", "chosen_by", "hyperparameters")
    return {
        k: v
        for k, v in winner.items()
        if k in plain or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def _name(text: str) -> str:
    """`text` in the characters W&B allows in run ids and artifact names."""
    return re.sub(r"[^\w.-]", "-", text)


TRACKER = WandbTracker
