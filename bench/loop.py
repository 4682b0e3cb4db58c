"""Benchmark 5: our epoch loop versus the usual DataLoader + ToTensor loop.

The usual loop is the one in PyTorch's MNIST example: a map-style dataset that turns each
stored digit into a PIL image and then a tensor with `transforms.ToTensor()`, batched by
a `DataLoader` (no worker processes, as in the example's defaults). Both loops train the
same model with the same loss and batch size, on one torch thread (what a 1-CPU trial
gets); only the way the batches are made differs.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from bench.common import BenchConfig, Searches, goal, run_child, table
from models.lstm import SeriesShape
from models.train import EVAL_BATCH, build, evaluate, train_epoch
from search.data import Dataset, Split, load_dataset
from search.space import SEED_CONFIG

TITLE = "5. Training loop"
# The tutorial's configuration, and the smallest network of the space at its largest
# batch, where the data pipeline's share of an epoch is largest.
LOOP_CONFIGS = {
    "tutorial (128 wide, batch 100)": SEED_CONFIG,
    "small (16 wide, batch 256)": {**SEED_CONFIG, "hidden_size": 16, "batch_size": 256},
}
USUAL_EVAL_BATCH = 1000  # pytorch/examples' --test-batch-size
UNSCALED = SeriesShape(28, 10, (0.0,) * 28, (1.0,) * 28)  # inputs already in [0, 1]


class PILDigits(TorchDataset):
    """What `torchvision.datasets.MNIST` does per item: uint8 array -> PIL -> transform."""

    def __init__(self, split: Split) -> None:
        from torchvision import transforms

        self.images, self.labels = split.values.numpy(), split.labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def train_steps(model, optimizer, batches) -> None:
    """The tutorial's training step over (inputs (B, 28, 28), labels) batches."""
    model.train()
    for inputs, labels in batches:
        loss = F.cross_entropy(model(inputs)[:, -1], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def usual_evaluate(model, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += int((model(images.squeeze(1))[:, -1].argmax(-1) == labels).sum())
        total += labels.numel()
    return correct / total


def one_epoch(config: dict, seed: int, epoch: int, data: Dataset, batches: list) -> dict:
    """Seconds of one epoch of each loop, each on a fresh model; alternating the loops
    spreads any noise from other work on the machine."""
    batch, train, val, seconds = int(config["batch_size"]), data.train, data.val, {}

    @contextlib.contextmanager
    def timed(name: str):
        started = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - started

    model, optimizer = build(config, data.shape_for(train), seed)
    with timed("ours"):  # our model scales the uint8 pixels batch by batch; that is counted
        train_epoch(model, optimizer, train.tensors(), batch, torch.Generator().manual_seed(epoch))
    with timed("ours_eval"):
        evaluate(model, val.tensors())

    # The usual loop's ToTensor already scales pixels into [0, 1]: a model that keeps them.
    model, optimizer = build(config, UNSCALED, seed)
    shuffle = torch.Generator().manual_seed(epoch)
    loader = DataLoader(PILDigits(train), batch_size=batch, shuffle=True, generator=shuffle)
    with timed("usual"):  # (B, 1, 28, 28) -> (B, 28, 28): the rows are the sequence
        train_steps(model, optimizer, ((x.squeeze(1), y) for x, y in loader))
    with timed("usual_eval"):
        usual_evaluate(model, DataLoader(PILDigits(val), batch_size=USUAL_EVAL_BATCH))

    # The ceiling for any loop: the model's own steps over batches made before the clock
    # starts (no shuffle, no indexing, no conversion).
    model, optimizer = build(config, UNSCALED, seed)
    with timed("model"):
        train_steps(model, optimizer, batches)
    return seconds


def measure(
    epochs: int, seed: int, dataset: str = "mnist-5k", data_dir: str | None = None
) -> dict:
    """In a child process: samples per second of training and of evaluation, ours, the
    usual loop's and the model's own steps', per configuration."""
    torch.set_num_threads(1)
    data = load_dataset(dataset, data_dir, seed=seed)
    n_train, n_val = len(data.train), len(data.val)
    train_x, train_y = data.train.values.float() / 255.0, data.train.labels
    results = {}
    for label, config in LOOP_CONFIGS.items():
        b = int(config["batch_size"])
        batches = [(train_x[i : i + b], train_y[i : i + b]) for i in range(0, n_train, b)]
        laps = [one_epoch(config, seed, epoch, data, batches) for epoch in range(epochs + 1)]
        seconds = {k: statistics.median(lap[k] for lap in laps[1:]) for k in laps[0]}  # 0: warm-up
        results[label] = {
            "train_samples_per_s": {k: n_train / seconds[k] for k in ("ours", "usual", "model")},
            "eval_samples_per_s": {k: n_val / seconds[f"{k}_eval"] for k in ("ours", "usual")},
            "eval_batch": {"ours": EVAL_BATCH, "usual": USUAL_EVAL_BATCH},
        }
    return {"configs": results, "n_train": n_train, "n_val": n_val, "epochs": epochs}


def run(c: BenchConfig, searches: Searches) -> dict:
    job = {"kind": "loop", "epochs": c.loop_epochs, "seed": c.seeds[0]}
    r = run_child(job | {"dataset": c.dataset, "data_dir": c.data_dir}, c)
    speedups = {}
    for label, figures in r["configs"].items():
        train, evals = figures["train_samples_per_s"], figures["eval_samples_per_s"]
        speedups[label] = {
            "train": train["ours"] / train["usual"],
            "eval": evals["ours"] / evals["usual"],
            # No loop can beat the model's own steps: the largest speed-up possible here.
            "train_ceiling": train["model"] / train["usual"],
        }
    first = next(iter(speedups))
    return {
        "sizes": {"epochs": c.loop_epochs, "train": r["n_train"], "val": r["n_val"], "threads": 1},
        "raw": r,
        "speedups": speedups,
        "goals": [
            goal(
                ">= 3x the samples per second of the DataLoader + ToTensor loop",
                ", ".join(
                    f"{label}: train {s['train']:.2f}x (model-only ceiling "
                    f"{s['train_ceiling']:.2f}x), eval {s['eval']:.2f}x"
                    for label, s in speedups.items()
                ),
                speedups[first]["train"] >= 3,
            )
        ],
    }


def render(r: dict) -> str:
    s = r["sizes"]
    rows = []
    for label, figures in r["raw"]["configs"].items():
        train, evals = figures["train_samples_per_s"], figures["eval_samples_per_s"]
        speed = {k: f"{v:.2f}x" for k, v in r["speedups"][label].items()}
        trains = [f"{train[k]:.0f}" for k in ("ours", "usual")] + [speed["train"]]
        ceiling = [f"{train['model']:.0f}", speed["train_ceiling"]]
        evaluations = [f"{evals[k]:.0f}" for k in ("ours", "usual")] + [speed["eval"]]
        rows.append([label, *trains, *ceiling, *evaluations])
    columns = ["configuration", "train ours", "train usual", "speed-up", "train model only"]
    columns += ["ceiling", "eval ours", "eval usual", "speed-up"]
    return "\n\n".join(
        [
            f"Samples per second, one torch thread, median of {s['epochs']} epochs over "
            f"{s['train']} training and {s['val']} validation digits. Usual: a dataset that "
            "makes a PIL image per digit and applies `transforms.ToTensor()`, batched by a "
            "`DataLoader` (no workers; evaluation batch 1000); ours: `models.train` on tensors "
            "converted once (the conversion is counted). Model only: the same training steps "
            "over batches made before the clock starts, the ceiling for any loop; its speed-up "
            "over the usual loop is the most any loop could reach.",
            table(rows, columns),
        ]
    )
