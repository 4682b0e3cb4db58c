"""A trained model as a user holds it: raw series in, their own class labels out.

`search.run_folder.load_best("runs/NAME")` returns one. It takes series the way the data
came: an array (N, T, F) or (N, T), or a list of series of different lengths, each
(T_i, F) or (T_i,); the model scales the values itself. It answers with the classes as
the training labels wrote them, after the whole series or, with `predict_early`, as soon
as the stopping rule chosen by the search is confident enough.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from models.early import StoppingRule
from models.lstm import steps_of
from models.train import predict_proba

SeriesInput = np.ndarray | torch.Tensor | Sequence


def as_batch(series: SeriesInput, lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Series as a user has them -> (values (N, T, F) float32 padded with 0, lengths (N,)).

    An array is (N, T, F) or (N, T) (one value per time point) with `lengths` (N,) if the
    series end before T; a list holds one array per series, (T_i, F) or (T_i,).
    """
    if isinstance(series, np.ndarray | torch.Tensor):
        values = torch.as_tensor(np.asarray(series), dtype=torch.float32)
        if values.ndim == 2:
            values = values[:, :, None]
        if values.ndim != 3:
            raise ValueError(f"series must be (N, T, F) or (N, T), got {tuple(values.shape)}")
        n, t = values.shape[:2]
        if lengths is None:
            return values, torch.full((n,), t, dtype=torch.long)
        lengths = torch.as_tensor(np.asarray(lengths), dtype=torch.long)
        if lengths.shape != (n,) or int(lengths.min()) < 1 or int(lengths.max()) > t:
            raise ValueError(f"lengths must be ({n},) values in 1..{t}")
        return values, lengths
    if lengths is not None:
        raise ValueError("lengths go with an array of series; a list's series have their own")
    parts = [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in series]
    parts = [p[:, None] if p.ndim == 1 else p for p in parts]
    if not parts or any(p.ndim != 2 or len(p) == 0 for p in parts):
        raise ValueError("a list of series holds (T_i, F) or (T_i,) arrays, none empty")
    lengths = torch.tensor([len(p) for p in parts])
    values = nn.utils.rnn.pad_sequence(parts, batch_first=True)  # (N, max T, F)
    return values, lengths


class Classifier:
    """A model (one network or an ensemble), the class labels, and the stopping rule."""

    def __init__(self, model: nn.Module, classes: Sequence, rule: StoppingRule | None = None):
        self.model = model.eval()
        self.classes = list(classes)
        self.rule = rule

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def proba_by_step(
        self, series: SeriesInput, lengths=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities after every step (N, S, C), each series' steps (N,))."""
        values, lengths = as_batch(series, lengths)
        features = self.model.shape.features
        if values.shape[2] != features:
            raise ValueError(
                f"the model reads {features} value(s) per time point, not {values.shape[2]}"
            )
        values, lengths = values.to(self.device), lengths.to(self.device)
        probs = predict_proba(self.model, (values, lengths, None))
        return probs, steps_of(lengths, self.model.config.patch)

    def predict_proba(self, series: SeriesInput, lengths=None) -> np.ndarray:
        """Class probabilities after each whole series: (N, C), columns in `classes` order."""
        probs, steps = self.proba_by_step(series, lengths)
        return probs[torch.arange(len(steps)), steps - 1].cpu().numpy()

    def predict(self, series: SeriesInput, lengths=None) -> list:
        """The class of each whole series, as the training labels wrote it."""
        return [self.classes[i] for i in self.predict_proba(series, lengths).argmax(1)]

    def predict_early(self, series: SeriesInput, lengths=None) -> tuple[list, np.ndarray]:
        """Each series' class under the stopping rule, and the share of the series read
        when it decided (its earliness)."""
        if self.rule is None:
            raise ValueError("this model has no stopping rule")
        values, lengths_t = as_batch(series, lengths)
        probs, steps = self.proba_by_step(values, lengths_t)
        classes, at = self.rule.decide(probs, steps)
        patch = self.model.config.patch
        read = torch.minimum(at[0].cpu() * patch, lengths_t).double() / lengths_t.double()
        return [self.classes[i] for i in classes[0].tolist()], read.numpy()
