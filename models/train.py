"""Plain-torch training and evaluation over tensors already in memory (no Ray here).

The whole split lives on the trial's device as one tensor, so an epoch is a random
permutation and a loop over index slices: no DataLoader, no per-sample Python.

`fit` is the one epoch loop: the search's trainable and the benchmarks' baselines both
iterate it, so they train, shuffle, evaluate and detect divergence the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from models.lstm import ROWS, LSTMConfig, RowLSTM

EVAL_BATCH = 2048  # large enough for few passes, small enough for a 256-wide 3-layer LSTM


def to_inputs(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 in [0, 1] on `device`, converted once per trial."""
    return images.to(device=device, dtype=torch.float32).div_(255.0)


# Where the training loss looks (`--loss`):
# - "last": the tutorial's, cross-entropy after the last row only; the hidden states of
#   an unfinished digit are never asked for an answer;
# - "all": every row's cross-entropy, row t weighted by t (row 28 counts 28 times row 1),
#   so the classifier learns to read a part-seen digit too, while the early rows' often
#   unanswerable questions count less. Of the every-row weightings it measured best
#   (benchmark 9: against "uniform", 1.7 points more final accuracy on t10k, 90% two
#   rows earlier, the same area within 0.01);
# - "uniform": every row's cross-entropy, all weighted alike (early classification's
#   plainest loss).
ROW_LOSSES = ("last", "all", "uniform")


def row_weights(loss: str, rows: int = ROWS) -> torch.Tensor:
    """The weight of each row's cross-entropy in the training loss: (rows,), sum 1."""
    if loss == "last":
        weights = torch.zeros(rows)
        weights[-1] = 1.0
    elif loss == "all":
        weights = torch.arange(1, rows + 1, dtype=torch.float32)
    elif loss == "uniform":
        weights = torch.ones(rows)
    else:
        raise ValueError(f"unknown loss {loss!r}; expected one of {ROW_LOSSES}")
    return weights / weights.sum()


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """logits (B, T, C), labels (B,) -> the scalar training loss `loss` names."""
    if loss == "last":  # the one-row case, without the (B, T) detour
        return F.cross_entropy(logits[:, -1], labels)
    steps = logits.shape[1]
    per_row = F.cross_entropy(  # (B, T): class axis second, a label per row
        logits.transpose(1, 2), labels[:, None].expand(-1, steps), reduction="none"
    )
    return per_row.mean(0) @ row_weights(loss, steps).to(logits.device)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    loss: str = "last",
) -> float:
    """One pass over (inputs, labels) in shuffled batches; returns the mean training loss.

    `loss` (ROW_LOSSES) says which rows' cross-entropy it is. A NaN or infinite loss is
    returned as is, for the caller to treat as divergence.
    """
    model.train()
    n = inputs.shape[0]
    order = torch.randperm(n, generator=generator).to(inputs.device)
    total = torch.zeros((), device=inputs.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        logits = model(inputs[idx])  # (B, T, C)
        batch_loss = sequence_loss(logits, labels[idx], loss)
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        optimizer.step()
        total += batch_loss.detach() * idx.numel()
    return float(total) / n


@dataclass(frozen=True)
class Evaluation:
    loss: float  # cross-entropy after the last row
    acc: float  # accuracy after the last row
    acc_by_step: list[float]  # accuracy after rows 1..28

    @property
    def auc_rows(self) -> float:
        """The area under the accuracy-by-row curve: mean accuracy over rows 1..28."""
        return sum(self.acc_by_step) / len(self.acc_by_step)

    def first_row_reaching(self, accuracy: float) -> int | None:
        """The first row (1-based) after which accuracy is at least `accuracy`."""
        return first_row_reaching(self.acc_by_step, accuracy)


def first_row_reaching(acc_by_step: Sequence[float], accuracy: float) -> int | None:
    """The first row (1-based) whose accuracy is at least `accuracy`; None: never."""
    return next((row for row, acc in enumerate(acc_by_step, 1) if acc >= accuracy), None)


@torch.no_grad()
def predict_proba(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities after every row: (N, 28, 28) -> (N, 28, 10), on the input's device."""
    model.eval()
    chunks = [
        model(inputs[start : start + EVAL_BATCH]).softmax(-1)
        for start in range(0, inputs.shape[0], EVAL_BATCH)
    ]
    return torch.cat(chunks)


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    """Loss and accuracy after the last row, and accuracy after each row, in eval mode."""
    model.eval()
    correct = torch.zeros(inputs.shape[1], dtype=torch.long, device=inputs.device)  # (T,)
    loss_sum = torch.zeros((), device=inputs.device)
    for start in range(0, inputs.shape[0], EVAL_BATCH):
        logits = model(inputs[start : start + EVAL_BATCH])  # (B, T, C)
        y = labels[start : start + EVAL_BATCH]  # (B,)
        correct += (logits.argmax(-1) == y[:, None]).sum(0)  # (T,)
        loss_sum += F.cross_entropy(logits[:, -1], y, reduction="sum")
    n = inputs.shape[0]
    acc_by_step = [c / n for c in correct.tolist()]  # exact fractions, not float32 noise
    return Evaluation(loss=float(loss_sum) / n, acc=acc_by_step[-1], acc_by_step=acc_by_step)


# (inputs (N, 28, 28) float in [0, 1], labels (N,) int64), both on the training device.
Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of `fit` produced."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch; NaN or infinite when training diverged
    val: Evaluation | None  # None when the epoch diverged (there is nothing to evaluate)
    seconds: float  # training and evaluation of this epoch

    @property
    def diverged(self) -> bool:
        return self.val is None


def build(config: Mapping, seed: int, device: torch.device | str = "cpu"):
    """The model and Adam optimizer a trial configuration describes, initialised from `seed`.

    `config` holds the searched hyperparameters (the LSTM's shape and `lr`); returns
    (RowLSTM, torch.optim.Adam).
    """
    torch.manual_seed(seed)
    model = RowLSTM(LSTMConfig.from_dict(config)).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=float(config["lr"]))


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Tensors,
    val: Tensors,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    start_epoch: int = 1,
    loss: str = "last",
) -> Iterator[EpochResult]:
    """Train epochs `start_epoch`..`epochs`, yielding each one's result as it ends.

    Every epoch shuffles with a generator seeded from (`seed`, epoch), so a run resumed
    at `start_epoch` from a checkpoint sees the same batches as one that never stopped.
    A non-finite training loss is yielded once as a diverged epoch and ends the loop.
    `loss` (ROW_LOSSES) is the training loss; evaluation measures every row whatever it is.
    """
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        shuffle = torch.Generator().manual_seed(seed * 100_003 + epoch)
        mean_loss = train_epoch(model, optimizer, *train, batch_size, shuffle, loss)
        if not math.isfinite(mean_loss):
            yield EpochResult(epoch, mean_loss, None, time.perf_counter() - started)
            return
        result = evaluate(model, *val)
        yield EpochResult(epoch, mean_loss, result, time.perf_counter() - started)


def timed(step, device: torch.device | str) -> float:
    """Seconds `step()` takes on `device`, waiting for CUDA's queued work at both ends."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started
