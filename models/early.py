"""Early classification: commit to a class as soon as the model is confident enough.

The rule reads a series step by step and decides at the first step whose top class
probability reaches `threshold` (at its last step if none does). Each decision has an
earliness: the share of the series' time points read before it. The field's summary of
accuracy and earliness is their harmonic mean (as in Schäfer and Leser's TEASER, 2020):
HM = 2·acc·(1 − earliness) / (acc + 1 − earliness).

The threshold is chosen where its harmonic mean is highest on data the model was not
trained on (the search's validation series); the report then measures it on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The thresholds tried: a grid over [0.5, 1), denser near 1 where confident models
# separate, plus 0 (decide at once) and 1.1 (never early: always read the whole series).
THRESHOLDS = tuple(
    sorted(
        {0.0, 1.1}
        | {round(0.5 + 0.02 * i, 2) for i in range(25)}
        | {0.97, 0.98, 0.99, 0.995, 0.999, 0.9999}
    )
)


def harmonic_mean(accuracy: float, earliness: float) -> float:
    """HM of accuracy and (1 − earliness); 0 where both are 0."""
    timeliness = 1.0 - earliness
    total = accuracy + timeliness
    return 2.0 * accuracy * timeliness / total if total > 0 else 0.0


@dataclass(frozen=True)
class EarlyResult:
    threshold: float
    accuracy: float  # of the decisions
    earliness: float  # mean share of each series read before its decision
    hm: float  # their harmonic mean


@dataclass(frozen=True)
class StoppingRule:
    """Decide at the first step whose top class probability is at least `threshold`."""

    threshold: float

    def decide(
        self, probs: torch.Tensor, steps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """probs (N, S, C) after every step, steps (N,) each series' own steps ->
        (classes (N,), the 1-based step of each decision (N,))."""
        return decide(probs, steps, torch.tensor([self.threshold], device=probs.device))

    def to_dict(self) -> dict:
        return {"threshold": self.threshold}


def decide(
    probs: torch.Tensor, steps: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decisions under each of `thresholds` (K,) at once: probs (N, S, C), steps (N,)
    -> (classes (K, N), decision steps (K, N), 1-based)."""
    top, predicted = probs.max(-1)  # (N, S)
    last = (steps - 1).clamp(min=0)  # (N,)
    sure = top[None] >= thresholds[:, None, None]  # (K, N, S)
    # A series' last step decides at the latest, so no step past its end is ever first.
    sure[:, torch.arange(len(steps)), last] = True
    at = sure.float().argmax(-1)  # (K, N): first True
    classes = predicted.gather(1, at.T).T  # (K, N)
    return classes, at + 1


def outcomes(
    probs: torch.Tensor,
    labels: torch.Tensor,
    steps: torch.Tensor,
    lengths: torch.Tensor,
    patch: int,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> list[EarlyResult]:
    """Accuracy, earliness and HM of the rule at each threshold: the trade-off curve.

    probs (N, S, C), labels (N,), steps (N,), lengths (N,) in time points; a decision at
    step t has read min(t·patch, length) time points.
    """
    grid = torch.tensor(thresholds, dtype=probs.dtype, device=probs.device)
    classes, at = decide(probs, steps, grid)
    right = (classes == labels[None]).double().mean(1)  # (K,)
    read = torch.minimum(at * patch, lengths[None]).double() / lengths[None].double()
    earliness = read.mean(1)  # (K,)
    return [
        EarlyResult(t, a, e, harmonic_mean(a, e))
        for t, a, e in zip(thresholds, right.tolist(), earliness.tolist(), strict=True)
    ]


def best_rule(results: list[EarlyResult]) -> EarlyResult:
    """The threshold with the highest HM; of equal HMs, the more accurate one."""
    return max(results, key=lambda r: (r.hm, r.accuracy))
