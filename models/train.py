"""Plain-torch training and evaluation over tensors already in memory (no Ray here).

The whole split lives on the trial's device as one tensor, so an epoch is a random
permutation and a loop over index slices: no DataLoader, no per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

EVAL_BATCH = 2048  # large enough for few passes, small enough for a 256-wide 3-layer LSTM


def to_inputs(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float32 in [0, 1] on `device`, converted once per trial."""
    return images.to(device=device, dtype=torch.float32).div_(255.0)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> float:
    """One pass over (inputs, labels) in shuffled batches; returns the mean training loss.

    The loss is the tutorial's: cross-entropy on the logits after the last row. A NaN or
    infinite loss is returned as is, for the caller to treat as divergence.
    """
    model.train()
    n = inputs.shape[0]
    order = torch.randperm(n, generator=generator).to(inputs.device)
    total = torch.zeros((), device=inputs.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        logits = model(inputs[idx])  # (B, T, C)
        loss = F.cross_entropy(logits[:, -1], labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * idx.numel()
    return float(total) / n


@dataclass(frozen=True)
class Evaluation:
    loss: float  # cross-entropy after the last row
    acc: float  # accuracy after the last row
    acc_by_step: list[float]  # accuracy after rows 1..28

    def as_metrics(self, prefix: str) -> dict:
        return {
            f"{prefix}_loss": self.loss,
            f"{prefix}_acc": self.acc,
            f"{prefix}_acc_by_step": self.acc_by_step,
        }


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
