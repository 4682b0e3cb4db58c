"""TensorBoard (`--track tensorboard`): event files in the run folder, one TensorBoard run
per trial.

`runs/NAME/tensorboard/trial_<id>/` holds a trial's figures for every epoch (scalars
`val_acc`, `val_loss`, `val_area`, ... step = epoch) and, once it ends, its
hyperparameters and `outcome` for the HParams view, whose metric columns are the last
value of each scalar. `tensorboard --logdir runs/NAME` shows every trial.

The search's side writes nothing: its flags, winner and report are in the run folder
already. A run folder in an object store is refused (`check`): the event files are
written to this machine's disk.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from search.errors import UserError
from search.run_folder import trial_dir
from search.tracking import Tracker

FOLDER = "tensorboard"  # inside the run folder


class TensorBoardTracker(Tracker):
    kind = "tensorboard"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._names: dict[str, str] = {}  # trial id -> its folder's name
        self._hyperparameters: dict[str, dict] = {}  # trial id -> what trial_started gave
        self._writers: dict = {}  # trial id -> its open SummaryWriter

    def __getstate__(self) -> dict:
        # Tune pickles this with its callbacks; an open writer (a file and a thread) is
        # not state: the next epoch opens it again.
        return {**self.__dict__, "_writers": {}}

    # ------------------------------------------------------------ the search's side

    def check(self) -> None:
        if self.search.local_dir is None:
            raise UserError(
                f"--track tensorboard writes event files on this machine's disk, and the "
                f"run folder {self.search.location} is in an object store: give a local "
                "--storage-path, or track with mlflow or wandb"
            )

    # ------------------------------------------------------------ the trials' side

    def trial_started(self, trial_id: str, name: str, hyperparameters: dict) -> None:
        # A trial started again (a retry, or a --resume) repeats the epochs after its
        # checkpoint: its writer is opened again at the first of them (`epoch`).
        self._close(trial_id)
        self._names[trial_id] = name
        self._hyperparameters[trial_id] = hyperparameters

    def epoch(self, trial_id: str, epoch: int, figures: dict[str, float]) -> None:
        writer = self._writers.get(trial_id) or self._open(trial_id, epoch)
        for key, value in figures.items():
            writer.add_scalar(key, value, global_step=epoch)
        writer.flush()  # a TensorBoard watching the search sees each epoch as it ends

    def trial_ended(self, trial_id: str, outcome: str, figures: dict[str, float]) -> None:
        writer = self._writers.get(trial_id) or self._open(trial_id, None)
        # Only the session's start info: the HParams view takes its columns from an
        # "experiment" summary when it finds one, and from the first one it finds, so one
        # trial's would hide the hyperparameters other trials have and it lacks. Without
        # one, TensorBoard gathers the columns from every trial's start info, and the
        # metric columns from the scalars of those trials (their last values). The end
        # info's status would always say success: `outcome` says more.
        values = {**self._hyperparameters.pop(trial_id, {}), "outcome": outcome}
        _, session_start, _ = hparams(values, {})
        writer.file_writer.add_summary(session_start)
        self._close(trial_id)

    def close(self) -> None:
        for trial_id in list(self._writers):
            self._close(trial_id)

    # ------------------------------------------------------------ helpers

    def _open(self, trial_id: str, first_epoch: int | None):
        """The trial's writer, opened on the first epoch this session logs for it."""
        # Epochs an earlier session (or the trial before a retry) logged from
        # `first_epoch` on are copies: Tune replays them from the trial's checkpoint. The
        # purge step (a session-start event at that step) hides them. Every writer gets
        # one, the first too: TensorBoard's Python loader takes a run's first start for
        # its beginning and purges only at a later one (its Rust loader at any).
        # (tbparse reads each event file apart: it shows the copies.)
        writer = SummaryWriter(str(self.logdir(trial_id)), purge_step=first_epoch)
        self._writers[trial_id] = writer
        return writer

    def logdir(self, trial_id: str) -> Path:
        name = self._names.get(trial_id) or trial_dir(trial_id)
        return self.search.local_dir / FOLDER / name

    def _close(self, trial_id: str) -> None:
        writer = self._writers.pop(trial_id, None)
        if writer is not None:
            writer.close()  # flushes


TRACKER = TensorBoardTracker
