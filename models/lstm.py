"""The sequence LSTM: the tutorial's network, generalised over depth, width and the data.

A series of T time points with F values each (an MNIST digit: 28 rows of 28 pixels) is
read `patch` consecutive time points per step, so S = ceil(T / patch) steps of
patch·F values. Every step goes through a linear projection, then a stack of LSTM layers;
a shared output layer turns the hidden state after *every* step into class logits, so
one forward pass says how well the model knows the class after 1, 2, ... S steps.

The network carries the data's per-channel scaling (fitted on the training split) as
buffers: it reads raw values, and a saved state_dict is the whole classifier.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LSTMConfig:
    """The searched values that determine the network's shape and initialisation."""

    num_layers: int = 1
    hidden_size: int = 128
    dropout: float = 0.0
    forget_bias: float = 1.0
    patch: int = 1  # consecutive time points read as one step

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.patch < 1:
            raise ValueError(f"patch must be >= 1, got {self.patch}")

    @classmethod
    def from_dict(cls, values: dict) -> LSTMConfig:
        """Pick this config's fields out of a larger dict (e.g. a Tune trial config); a
        space that does not search `patch` reads one time point per step."""
        return cls(
            num_layers=int(values["num_layers"]),
            hidden_size=int(values["hidden_size"]),
            dropout=float(values["dropout"]),
            forget_bias=float(values["forget_bias"]),
            patch=int(values.get("patch", 1)),
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SeriesShape:
    """What the data fixes about the network: values per time point, classes, scaling.

    The scaling maps a raw value x of channel c to (x - shift[c]) / scale[c]: the training
    split's mean and standard deviation, or a known range (MNIST's pixels: 0 and 255).
    """

    features: int
    classes: int
    shift: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.shift) == len(self.scale) == self.features:
            raise ValueError("shift and scale need one value per feature")

    @classmethod
    def from_dict(cls, values: dict) -> SeriesShape:
        return cls(
            features=int(values["features"]),
            classes=int(values["classes"]),
            shift=tuple(float(v) for v in values["shift"]),
            scale=tuple(float(v) for v in values["scale"]),
        )

    def to_dict(self) -> dict:
        return asdict(self)  # plain values: JSON writes the tuples as lists


def steps_of(lengths: torch.Tensor, patch: int) -> torch.Tensor:
    """Steps in which the network reads series of `lengths` time points: ceil(L / patch)."""
    return torch.div(lengths + patch - 1, patch, rounding_mode="floor")


class SequenceLSTM(nn.Module):
    """Scaling -> patches -> input projection -> multi-layer LSTM -> dropout -> a
    classifier after every step."""

    def __init__(self, config: LSTMConfig, shape: SeriesShape) -> None:
        super().__init__()
        self.config, self.shape = config, shape
        h = config.hidden_size
        self.register_buffer("shift", torch.tensor(shape.shift, dtype=torch.float32))  # (F,)
        self.register_buffer("scale", torch.tensor(shape.scale, dtype=torch.float32))  # (F,)
        self.input_proj = nn.Linear(shape.features * config.patch, h)
        # nn.LSTM applies its dropout only *between* layers (never after the last one),
        # and warns if asked to with a single layer, hence the explicit 0.
        self.lstm = nn.LSTM(
            input_size=h,
            hidden_size=h,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(h, shape.classes)
        self._init_forget_bias(config.forget_bias)

    def _init_forget_bias(self, forget_bias: float) -> None:
        """Zero all gate biases, then give the forget gate `forget_bias`.

        As in TensorFlow's LSTM cell, a positive forget bias makes the cell remember by
        default early in training. PyTorch keeps two bias vectors per layer
        (`bias_ih`, `bias_hh`) that are added together, each laid out as the gates
        (i, f, g, o); the whole forget bias goes into `bias_ih` so the sum is exact.
        """
        h = self.config.hidden_size
        with torch.no_grad():
            for name, param in self.lstm.named_parameters():
                if name.startswith("bias_"):
                    param.zero_()
                    if name.startswith("bias_ih"):
                        param[h : 2 * h].fill_(forget_bias)

    @property
    def parameter_count(self) -> int:
        """Weights and biases, all trained: the model's size (`--objective accuracy+size`)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, series: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """series (B, T, F) raw values, lengths (B,) time points each (None: all T) ->
        logits (B, S, C), one set per step read, S = ceil(T / patch).

        Values past a series' length are ignored: they become 0 after scaling, the
        value a series of exactly that length is padded with. The LSTM reads forward
        only, so the logits after a series' own last step never see the padding.
        """
        b, t, f = series.shape
        x = (series.float() - self.shift) / self.scale  # (B, T, F)
        if lengths is not None:
            past_end = torch.arange(t, device=x.device) >= lengths[:, None]  # (B, T)
            x = x.masked_fill(past_end[..., None], 0.0)
        p = self.config.patch
        steps = math.ceil(t / p)
        x = nn.functional.pad(x, (0, 0, 0, steps * p - t))  # (B, S*p, F)
        x = x.reshape(b, steps, p * f)  # (B, S, p*F): time points in order, then channels
        x = self.input_proj(x)  # (B, S, H)
        x, _ = self.lstm(x)  # (B, S, H)
        x = self.output_dropout(x)
        return self.classifier(x)  # (B, S, C)


class Ensemble(nn.Module):
    """Several trained SequenceLSTMs of one configuration, read as one model.

    Single trainings of a configuration differ by about a point of accuracy from one
    initialisation (or training fold) to the next; averaging their class probabilities
    removes much of that. Returns log-probabilities, so `.argmax(-1)` and `.softmax(-1)`
    work as on logits.
    """

    def __init__(self, members: list[SequenceLSTM]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config, self.shape = members[0].config, members[0].shape

    def forward(self, series: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """series (B, T, F), lengths (B,) -> log of the mean probabilities (B, S, C)."""
        probs = torch.stack([m(series, lengths).softmax(-1) for m in self.members])  # (M,B,S,C)
        return probs.mean(0).log()  # (B, S, C)
