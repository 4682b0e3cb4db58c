"""MLflow (`--track mlflow`, `--track mlflow=URI`): a parent run per search, a child run
per trial.

The parent holds the search's flags, dataset and command; at the end its winner (tags
`winner.*`, metrics `winner_*`), its trial counts, and `best/` and the report as
artifacts. Each child holds its trial's hyperparameters (params), every epoch's figures
(metrics, step = epoch) and its outcome (tag `outcome`: completed, stopped, diverged,
failed). The children are found again by their parent and `trial_id` tags, so a resumed
search continues the same runs, whatever Tune's saved state remembers.

Only MLflow's client (`MlflowClient`) is used: no active run, no global state in the
process that a notebook may use for its own runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from search import metrics as m
from search.run_folder import BEST_DIR, RESULT_JSON, TrialStatus, trial_dir
from search.tracking import SearchEnd, Tracker, epoch_figures

EXPERIMENT = "lstm-search"  # unless MLFLOW_EXPERIMENT_NAME says another
PARENT_TAG = "mlflow.parentRunId"  # what MLflow's UI nests child runs by
TRIAL_TAG = "trial_id"  # Tune's trial id: a child's key
# MLflow's ends of a run, by the trial's outcome (a run stopped by ASHA ended normally).
RUN_STATUS = {
    TrialStatus.COMPLETED: "FINISHED",
    TrialStatus.STOPPED: "FINISHED",
    TrialStatus.DIVERGED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.UNFINISHED: "KILLED",  # the search was interrupted; --resume continues it
}
LOST = "lost"  # a child whose trial Tune never saved (the driver was killed just after)
# A trial's epochs go out together, at most this often, and at its end: one request for
# several epochs (each request costs the server's CPU, beside the trials). Those a killed
# driver held back are taken from Tune's result.json when the trial resumes.
FLUSH_SECONDS = 10.0
BATCH = 900  # metrics per request: MLflow's limit is 1,000 values, params and tags included
# What a tracker holds for one session only: Tune pickles the rest with its callbacks.
SESSION = (
    "_client",
    "_children",
    "_last_epochs",
    "_with_params",
    "_pending_epochs",
    "_pending_params",
    "_flushed_at",
)


class MlflowTracker(Tracker):
    kind = "mlflow"

    def __getstate__(self) -> dict:
        # Tune pickles this with its callbacks; a client (and its connection) is not state.
        return {k: v for k, v in self.__dict__.items() if k not in SESSION}

    @property
    def client(self):
        if getattr(self, "_client", None) is None:
            from mlflow.tracking import MlflowClient

            # A server that stops answering must cost the search seconds, not minutes:
            # by default MLflow's client retries a request 7 times, with growing waits,
            # and waits 120 s for each answer. A user's own settings win.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
            # Not a "View run ... at" pair of lines for every trial that ends (and the
            # request that finds its name): `start` says where the search's run is, once.
            os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

            self._client = MlflowClient(tracking_uri=self.state.get("tracking_uri"))
        return self._client

    @property
    def parent(self) -> str:
        return self.state["run_id"]

    # ------------------------------------------------------------ the search's side

    def start(self, resumed: bool) -> dict:
        if self.state.get("run_id"):  # resumed: the same parent run
            self.client.update_run(self.parent, status="RUNNING")
            return self.state
        import mlflow

        # Resolved now and kept: a resume from another folder finds the same store.
        self.state["tracking_uri"] = self.spec.value or mlflow.get_tracking_uri()
        experiment = _experiment_name()
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        search = self.search
        run = self.client.create_run(
            experiment_id,
            run_name=search.name,
            tags={
                "dataset": search.dataset,
                "command": search.command,
                "run_folder": search.location,
                "metric": search.metric,
            },
        )
        self.state |= {"experiment_id": experiment_id, "run_id": run.info.run_id}
        self._log(self.parent, [], params=_params(search.flags))
        print(f"MLflow: run {search.name} ({run.info.run_id}) in {_where(self.state)}")
        return self.state

    def finish(self, end: SearchEnd) -> None:
        # trials.csv has the last word on each trial's outcome; most children have it
        # already (`trial_ended`), the rest ended with the session or were lost.
        statuses = dict(zip(end.table["trial_id"], end.table["status"], strict=True))
        epochs = dict(zip(end.table["trial_id"], end.table["epochs"], strict=True))
        children = {}
        for run in self._child_runs():
            trial_id, run_id = run.data.tags[TRIAL_TAG], run.info.run_id
            children[trial_id] = run_id
            # Epochs a killed session held back of a trial that did not run again.
            logged = int(run.data.metrics.get("epoch", 0))
            missing = []
            if logged < epochs.get(trial_id, 0):
                missing = self._logged_by_tune(trial_id, logged, int(epochs[trial_id]) + 1)
            outcome = str(statuses.get(trial_id, LOST))
            status = RUN_STATUS.get(outcome, "KILLED")
            if (run.data.tags.get("outcome"), run.info.status) != (outcome, status):
                self._log(run_id, _epoch_metrics(missing), tags={"outcome": outcome})
                self.client.set_terminated(run_id, status)
            elif missing:
                self._log(run_id, _epoch_metrics(missing))
        metrics = {f"trials_{outcome}": float(n) for outcome, n in end.counts.items()}
        tags = {}
        if end.winner is not None:
            winner = end.winner
            metrics |= {
                f"winner_{k}": float(v)
                for k, v in winner.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            tags = {f"winner.{k}": str(v) for k, v in winner["hyperparameters"].items()}
            tags |= {
                "winner.trial_id": winner["trial_id"],
                "winner.chosen_by": winner["chosen_by"],
            }
            if (child := children.get(winner["trial_id"])) is not None:
                tags["winner.run_id"] = child
            if self.search.local_dir is not None:
                self.client.log_artifacts(
                    self.parent, str(self.search.local_dir / BEST_DIR), BEST_DIR
                )
        self._log(self.parent, _metrics([(0, metrics)]), tags=tags)
        self.client.set_terminated(self.parent, "KILLED" if end.interrupted else "FINISHED")

    def add_report(self, report_dir: Path) -> None:
        if self.state.get("run_id") and report_dir.is_dir():
            self.client.log_artifacts(self.parent, str(report_dir), report_dir.name)

    # ------------------------------------------------------------ the trials' side

    def trial_started(self, trial_id: str, name: str, hyperparameters: dict) -> None:
        children = self._children_by_trial()
        self._flushed_at[trial_id] = time.monotonic()
        if trial_id in children:  # resumed from its checkpoint
            self.client.update_run(children[trial_id], status="RUNNING")
            if trial_id not in self._with_params:  # made by a session killed at once
                self._pending_params[trial_id] = _params(hyperparameters)
            return
        run = self.client.create_run(
            self.state["experiment_id"],
            run_name=name,
            tags={PARENT_TAG: self.parent, TRIAL_TAG: trial_id},
        )
        children[trial_id] = run.info.run_id
        # Sent with its first epochs: one request fewer per trial.
        self._pending_params[trial_id] = _params(hyperparameters)

    def epoch(self, trial_id: str, epoch: int, figures: dict[str, float]) -> None:
        if trial_id not in self._children_by_trial():
            return
        last = self._last_epochs.get(trial_id, 0)
        if epoch <= last:
            # An epoch it has logged already: Tune replays those after a killed driver's
            # last saved state, from the checkpoint before them.
            return
        if epoch > last + 1:  # epochs a killed session held back: from Tune's own log
            self._pending_epochs[trial_id] += self._logged_by_tune(trial_id, last, epoch)
        self._last_epochs[trial_id] = epoch
        self._pending_epochs[trial_id].append((epoch, figures))
        if time.monotonic() - self._flushed_at.get(trial_id, 0.0) >= FLUSH_SECONDS:
            self._flush(trial_id)

    def trial_ended(self, trial_id: str, outcome: str, figures: dict[str, float]) -> None:
        run_id = self._children_by_trial().get(trial_id)
        if run_id is not None:
            self._flush(trial_id, tags={"outcome": outcome})
            self.client.set_terminated(run_id, RUN_STATUS[TrialStatus(outcome)])

    def close(self) -> None:
        for trial_id in list(getattr(self, "_pending_epochs", {})):
            self._flush(trial_id)
        self._client = None

    # ------------------------------------------------------------ helpers

    def _children_by_trial(self) -> dict[str, str]:
        """trial id -> child run id, read from the server once per session (a resumed
        search's children were made by an earlier process)."""
        if getattr(self, "_children", None) is None:
            self._children, self._last_epochs, self._with_params = {}, {}, set()
            self._pending_epochs = defaultdict(list)  # trial id -> [(epoch, figures)]
            self._pending_params, self._flushed_at = {}, {}
            for run in self._child_runs():
                trial_id = run.data.tags[TRIAL_TAG]
                self._children[trial_id] = run.info.run_id
                self._last_epochs[trial_id] = int(run.data.metrics.get("epoch", 0))
                if run.data.params:
                    self._with_params.add(trial_id)
        return self._children

    def _flush(self, trial_id: str, tags: dict | None = None) -> None:
        """A trial's epochs and hyperparameters held back, and `tags`, in one request."""
        epochs = self._pending_epochs.pop(trial_id, [])
        params = self._pending_params.pop(trial_id, None)
        self._flushed_at[trial_id] = time.monotonic()
        self._log(self._children[trial_id], _epoch_metrics(epochs), params, tags)
        if params:
            self._with_params.add(trial_id)

    def _logged_by_tune(self, trial_id: str, after: int, before: int) -> list:
        """Epochs `after` < e < `before` of a trial, from its result.json in the run
        folder (the last report of each: a replayed epoch's newest)."""
        if self.search.local_dir is None:
            return []
        found = {}
        path = self.search.local_dir / trial_dir(trial_id) / RESULT_JSON
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    result = json.loads(line)
                    epoch = int(result.get(m.EPOCH, 0))
                    if after < epoch < before:
                        found[epoch] = epoch_figures(result)
        return sorted(found.items())

    def _child_runs(self):
        token, runs = None, []
        while True:
            page = self.client.search_runs(
                [self.state["experiment_id"]],
                filter_string=f"tags.`{PARENT_TAG}` = '{self.parent}'",
                max_results=1000,
                page_token=token,
            )
            runs += [r for r in page if TRIAL_TAG in r.data.tags]
            token = page.token
            if not token:
                return runs

    def _log(self, run_id: str, metrics: list, params=None, tags=None) -> None:
        """`metrics` (MLflow's Metric), `params` and `tags` in one request; several where
        the metrics pass MLflow's limit of 1,000 values (a long backlog of epochs)."""
        from mlflow.entities import Param, RunTag

        params = [Param(k, str(v)) for k, v in (params or {}).items()]
        tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for start in range(0, max(len(metrics), 1), BATCH):
            if metrics or params or tags:
                self.client.log_batch(
                    run_id, metrics=metrics[start : start + BATCH], params=params, tags=tags
                )
            params, tags = [], []  # sent with the first request


def _where(state: dict) -> str:
    """Where a user finds the search's run: its page on a server, or the store."""
    uri = state["tracking_uri"]
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{state['experiment_id']}/runs/{state['run_id']}"
    return f"{uri} (`mlflow ui --backend-store-uri {uri}` shows it)"


def _metrics(steps: list[tuple[int, dict[str, float]]]) -> list:
    """MLflow metrics of (step, {name: value}) pairs, stamped now."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for step, values in steps for k, v in values.items()]


def _epoch_metrics(epochs: list[tuple[int, dict[str, float]]]) -> list:
    """A trial's epochs as MLflow metrics (step = epoch), each with its `epoch`: the
    last one tells a resumed search how far a child got."""
    return _metrics([(epoch, {**figures, "epoch": float(epoch)}) for epoch, figures in epochs])


def _experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT


def _params(values: dict) -> dict[str, str]:
    """Flags or hyperparameters as MLflow params: set ones only, as text (MLflow keeps
    at most 6,000 characters of a value)."""
    return {k: str(v)[:6000] for k, v in values.items() if v is not None}


TRACKER = MlflowTracker
