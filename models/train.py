"""Plain-torch training and evaluation over tensors already in memory (no Ray here).

The whole split lives on the trial's device as one tensor, so an epoch is a random
permutation and a loop over index slices: no DataLoader, no per-sample Python.

`fit` is the one epoch loop: the search's trainable, the confirmation and the benchmarks'
baselines all iterate it, so they train, shuffle, evaluate and detect divergence the same
way. It trains one model per fold (one for a validation split, K under cross-validation)
and judges them together on their validation series: out-of-fold figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from models.early import EarlyResult, best_rule, outcomes
from models.lstm import LSTMConfig, SequenceLSTM, SeriesShape, steps_of

EVAL_BATCH = 2048  # large enough for few passes, small enough for a 256-wide 3-layer LSTM
# An epoch reads at least this many series, summed over a trial's folds: one pass over a
# training split of 40 series is two Adam steps, far too little to judge a trial after.
# 4,000 is mnist-5k's training split, whose epochs therefore stay one pass; under 5-fold
# cross-validation each fold's model reads at least 800 series an epoch, so a trial's
# epoch costs about what one model's would.
MIN_EPOCH_SERIES = 4000
# The shares of a series read at which accuracy is measured: 5%, 10%, ... 100%.
SHARES = tuple(round(0.05 * i, 2) for i in range(1, 21))


class SeriesTensors(NamedTuple):
    """One split on a device: values (N, T, F) as stored (uint8 or float32; the model
    scales them), lengths (N,) in time points, labels (N,) int64."""

    values: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @property
    def full_length(self) -> bool:
        """Every series is as long as the split: no padding to ignore."""
        return bool((self.lengths == self.values.shape[1]).all())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: torch.Tensor | slice) -> SeriesTensors:
        """The series at `index`."""
        return SeriesTensors(self.values[index], self.lengths[index], self.labels[index])


# Where the training loss looks (`--loss`):
# - "last": the tutorial's, cross-entropy after each series' last step only; the hidden
#   states of an unfinished series are never asked for an answer;
# - "all": every step's cross-entropy, step t of S weighted by t (the last counts S times
#   the first), so the classifier learns to read a part-seen series too, while the early
#   steps' often unanswerable questions count less. Of the every-step weightings it
#   measured best on MNIST (benchmark 9: against "uniform", 1.7 points more final
#   accuracy on t10k, 90% two rows earlier, the same area within 0.01);
# - "uniform": every step's cross-entropy, all weighted alike (early classification's
#   plainest loss);
# - "mixed": half "last", half "all": the last step keeps most of the weight, and the
#   early steps are still asked for answers, which an early classifier needs.
STEP_LOSSES = ("last", "all", "uniform", "mixed")


def step_weights(loss: str, steps: torch.Tensor, width: int) -> torch.Tensor:
    """The weight of each step's cross-entropy for series of `steps` (B,) steps, padded to
    `width`: (B, width), each row summing to 1 over the series' own steps."""
    if loss not in STEP_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {STEP_LOSSES}")
    t = torch.arange(1, width + 1, device=steps.device, dtype=torch.float32)[None]  # (1, S)
    own = t <= steps[:, None]  # (B, S)
    last = (t == steps[:, None]).float()
    rising = t * own / (steps * (steps + 1) / 2)[:, None]
    if loss == "last":
        return last
    if loss == "all":
        return rising
    if loss == "uniform":
        return own / steps[:, None].float()
    return 0.5 * last + 0.5 * rising  # mixed


def sequence_loss(
    logits: torch.Tensor, labels: torch.Tensor, loss: str, steps: torch.Tensor | None = None
) -> torch.Tensor:
    """logits (B, S, C), labels (B,), each series' own steps (B,) (None: all S) -> the
    scalar training loss `loss` names, each series weighted alike."""
    b, s, _ = logits.shape
    if loss == "last" and steps is None:  # the tutorial's case, without the (B, S) detour
        return F.cross_entropy(logits[:, -1], labels)
    if steps is None:
        steps = torch.full((b,), s, device=logits.device)
    weights = step_weights(loss, steps, s).to(logits.dtype)  # (B, S)
    per_step = F.cross_entropy(  # (B, S): class axis second, a label per step
        logits.transpose(1, 2), labels[:, None].expand(-1, s), reduction="none"
    )
    return (per_step * weights).sum(1).mean()


def _batches(n: int, samples: int, batch_size: int, generator: torch.Generator | None):
    """Index batches over `samples` series drawn from n: whole shuffled passes, the last
    cut short, so an epoch of a small split still reads `samples` series."""
    passes = math.ceil(samples / n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])
    order = order[:samples]
    for start in range(0, samples, batch_size):
        yield order[start : start + batch_size]


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: SeriesTensors,
    batch_size: int,
    generator: torch.Generator | None = None,
    loss: str = "last",
    samples: int | None = None,
) -> float:
    """One epoch of `samples` series (default: one pass) in shuffled batches; returns the
    mean training loss. `loss` (STEP_LOSSES) says which steps' cross-entropy it is. A NaN
    or infinite loss is returned as is, for the caller to treat as divergence."""
    model.train()
    n = len(data)
    samples = samples or n
    full = data.full_length
    patch = model.config.patch
    total = torch.zeros((), device=data.values.device)
    for idx in _batches(n, samples, batch_size, generator):
        idx = idx.to(data.values.device)
        if full:
            logits = model(data.values[idx])  # (B, S, C)
            batch_loss = sequence_loss(logits, data.labels[idx], loss)
        else:
            lengths = data.lengths[idx]
            values = data.values[idx, : int(lengths.max())]  # no step past the batch's longest
            logits = model(values, lengths)
            batch_loss = sequence_loss(logits, data.labels[idx], loss, steps_of(lengths, patch))
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        optimizer.step()
        total += batch_loss.detach() * idx.numel()
    return float(total) / samples


@torch.no_grad()
def predict_proba(model: nn.Module, data: SeriesTensors | torch.Tensor) -> torch.Tensor:
    """Class probabilities after every step: (N, S, C), on the input's device. `data`:
    a split, or values (N, T, F) of series that all fill T."""
    model.eval()
    values, lengths = (data, None) if isinstance(data, torch.Tensor) else data[:2]
    if lengths is not None and bool((lengths == values.shape[1]).all()):
        lengths = None
    chunks = []
    for start in range(0, values.shape[0], EVAL_BATCH):
        part = None if lengths is None else lengths[start : start + EVAL_BATCH]
        chunks.append(model(values[start : start + EVAL_BATCH], part).softmax(-1))
    return torch.cat(chunks)


@dataclass(frozen=True)
class Evaluation:
    """What a model (or a fold's models, out of fold) showed on validation series."""

    loss: float  # cross-entropy after each series' last step
    acc: float  # accuracy after each series' last step
    acc_by_step: list[float]  # after steps 1..S (a series shorter than t: its last answer)
    acc_by_share: list[float]  # after reading SHARES of each series
    area: float  # mean over series of the share of its own steps read right
    early: EarlyResult  # the stopping rule whose HM was best on these series

    @property
    def auc_steps(self) -> float:
        """The area under the accuracy-by-step curve (equal to `area` for series of equal
        length)."""
        return sum(self.acc_by_step) / len(self.acc_by_step)

    def first_step_reaching(self, accuracy: float) -> int | None:
        """The first step (1-based) after which accuracy is at least `accuracy`."""
        return first_step_reaching(self.acc_by_step, accuracy)


def first_step_reaching(acc_by_step: Sequence[float], accuracy: float) -> int | None:
    """The first step (1-based) whose accuracy is at least `accuracy`; None: never."""
    return next((step for step, acc in enumerate(acc_by_step, 1) if acc >= accuracy), None)


def share_steps(lengths: torch.Tensor, patch: int, shares=SHARES) -> torch.Tensor:
    """(N, len(shares)): the steps after which each series has had each share read (at
    least one time point, rounded up)."""
    grid = torch.tensor(shares, dtype=torch.float64, device=lengths.device)
    points = torch.ceil(grid[None] * lengths[:, None].double() - 1e-9).clamp(min=1).long()
    return steps_of(points, patch)


def right_by_step(probs: torch.Tensor, labels: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """(N, S) bool: right after step t, where a series past its own end keeps its last
    answer. probs (N, S, C), labels (N,), steps (N,)."""
    s = probs.shape[1]
    held = torch.minimum(torch.arange(s, device=probs.device)[None], (steps - 1)[:, None])
    predicted = probs.argmax(-1).gather(1, held)  # (N, S)
    return predicted == labels[:, None]


def evaluate_probs(
    probs: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, patch: int
) -> Evaluation:
    """Every figure of `Evaluation` from the probabilities after every step (N, S, C) of
    series with `labels` (N,) and `lengths` (N,) time points, read `patch` per step."""
    n = labels.shape[0]
    steps = steps_of(lengths, patch)  # (N,)
    rows = torch.arange(n, device=probs.device)
    final = probs[rows, steps - 1]  # (N, C)
    right = right_by_step(probs, labels, steps)  # (N, S)
    own = torch.arange(probs.shape[1], device=probs.device)[None] < steps[:, None]
    at_share = share_steps(lengths, patch)  # (N, K)
    by_share = right.gather(1, at_share - 1)  # (N, K)
    loss = F.nll_loss(final.clamp_min(1e-12).log(), labels, reduction="sum")
    acc_by_step = [c / n for c in right.sum(0).tolist()]  # exact fractions of whole counts
    return Evaluation(
        loss=float(loss) / n,
        acc=int((final.argmax(-1) == labels).sum()) / n,
        acc_by_step=acc_by_step,
        acc_by_share=[c / n for c in by_share.sum(0).tolist()],
        area=float(((right & own).sum(1).double() / steps.double()).mean()),
        early=best_rule(outcomes(probs, labels, steps, lengths, patch)),
    )


def evaluate(model: nn.Module, data: SeriesTensors) -> Evaluation:
    """Every figure of `Evaluation` of one model on `data`, in eval mode."""
    probs = predict_proba(model, data)
    return evaluate_probs(probs, data.labels, data.lengths, model.config.patch)


@dataclass(frozen=True)
class Fold:
    """One model's training: its series, the series it is judged on, its optimizer."""

    model: SequenceLSTM
    optimizer: torch.optim.Optimizer
    train: SeriesTensors
    val: SeriesTensors


@dataclass(frozen=True)
class EpochResult:
    """What one epoch of `fit` produced."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch and folds; NaN or infinite when training diverged
    val: Evaluation | None  # None when the epoch diverged (there is nothing to evaluate)
    seconds: float  # training and evaluation of this epoch, all folds

    @property
    def diverged(self) -> bool:
        return self.val is None


def build(config: Mapping, shape: SeriesShape, seed: int, device: torch.device | str = "cpu"):
    """The model and Adam optimizer a trial configuration describes, initialised from `seed`.

    `config` holds the searched hyperparameters (the LSTM's shape and `lr`); `shape` what
    the data fixes; returns (SequenceLSTM, torch.optim.Adam).
    """
    torch.manual_seed(seed)
    model = SequenceLSTM(LSTMConfig.from_dict(config), shape).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=float(config["lr"]))


def fold_seed(seed: int, fold: int) -> int:
    """The seed of fold `fold`'s model and shuffles (fold 0: `seed` itself)."""
    return seed + 7919 * fold


def epoch_samples(train_size: int, folds: int = 1) -> int:
    """Series one fold's model reads in an epoch: a pass over its `train_size` training
    series, or its share of MIN_EPOCH_SERIES if that is more."""
    return max(train_size, math.ceil(MIN_EPOCH_SERIES / folds))


def fit(
    folds: Sequence[Fold],
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    start_epoch: int = 1,
    loss: str = "last",
    epoch_folds: int | None = None,
) -> Iterator[EpochResult]:
    """Train epochs `start_epoch`..`epochs` of every fold's model, yielding each epoch's
    result, judged out of fold on all the folds' validation series together.

    Every epoch shuffles with a generator seeded from (`seed`, fold, epoch), so a run
    resumed at `start_epoch` from a checkpoint sees the same batches as one that never
    stopped. A non-finite training loss is yielded once as a diverged epoch and ends the
    loop. `loss` (STEP_LOSSES) is the training loss; evaluation measures every step
    whatever it is. `epoch_folds`: the folds that share an epoch's series (default: these;
    the confirmation trains one of a search's folds at a time).
    """
    patch = folds[0].model.config.patch
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        losses = []
        for k, fold in enumerate(folds):
            shuffle = torch.Generator().manual_seed(fold_seed(seed, k) * 100_003 + epoch)
            samples = epoch_samples(len(fold.train), epoch_folds or len(folds))
            losses.append(
                train_epoch(
                    fold.model, fold.optimizer, fold.train, batch_size, shuffle, loss, samples
                )
            )
        mean_loss = sum(losses) / len(losses)
        if not math.isfinite(mean_loss):
            yield EpochResult(epoch, mean_loss, None, time.perf_counter() - started)
            return
        result = evaluate_out_of_fold(folds, patch)
        yield EpochResult(epoch, mean_loss, result, time.perf_counter() - started)


def evaluate_out_of_fold(folds: Sequence[Fold], patch: int) -> Evaluation:
    """Each fold's model on its own validation series, judged as one set."""
    probs = [predict_proba(fold.model, fold.val) for fold in folds]
    width = max(p.shape[1] for p in probs)
    probs = torch.cat([F.pad(p, (0, 0, 0, width - p.shape[1]), value=0.0) for p in probs])
    labels = torch.cat([fold.val.labels for fold in folds])
    lengths = torch.cat([fold.val.lengths for fold in folds])
    return evaluate_probs(probs, labels, lengths, patch)


def timed(step, device: torch.device | str) -> float:
    """Seconds `step()` takes on `device`, waiting for CUDA's queued work at both ends."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started
