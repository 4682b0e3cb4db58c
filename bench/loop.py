"""Benchmark 5's measurement: our epoch loop versus the usual DataLoader + ToTensor loop.

The usual loop is the one in PyTorch's MNIST example: a map-style dataset that turns each
stored digit into a PIL image and then a tensor with `transforms.ToTensor()`, batched by
a `DataLoader` (no worker processes, as in the example's defaults). Both loops train the
same model with the same loss and batch size, on one torch thread (what a 1-CPU trial
gets); only the way the batches are made differs.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from models.lstm import LSTMConfig, RowLSTM
from models.train import EVAL_BATCH, evaluate, to_inputs, train_epoch
from search.data import load_dataset
from search.space import SEED_CONFIG

# The tutorial's configuration, and the smallest network of the space at its largest
# batch, where the data pipeline's share of an epoch is largest.
LOOP_CONFIGS = {
    "tutorial (128 wide, batch 100)": SEED_CONFIG,
    "small (16 wide, batch 256)": {**SEED_CONFIG, "hidden_size": 16, "batch_size": 256},
}
USUAL_EVAL_BATCH = 1000  # pytorch/examples' --test-batch-size


class PILDigits(TorchDataset):
    """What `torchvision.datasets.MNIST` does per item: uint8 array -> PIL -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images, self.labels = images.numpy(), labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def usual_train_epoch(model, optimizer, loader: DataLoader) -> None:
    model.train()
    for images, labels in loader:
        logits = model(images.squeeze(1))  # (B, 1, 28, 28) -> (B, 28, 28) -> (B, T, C)
        loss = F.cross_entropy(logits[:, -1], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def model_steps(model, optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
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


def measure_loops(
    epochs: int, seed: int, dataset: str = "mnist-5k", data_dir: str | None = None
) -> dict:
    """Samples per second of training and of evaluation, ours and the usual, per config."""
    torch.set_num_threads(1)
    data = load_dataset(dataset, data_dir, seed=seed)
    n_train, n_val = len(data.train), len(data.val)
    results = {}
    for label, config in LOOP_CONFIGS.items():
        batch = int(config["batch_size"])

        def fresh(config: dict = config):
            torch.manual_seed(seed)
            model = RowLSTM(LSTMConfig.from_dict(config))
            return model, torch.optim.Adam(model.parameters(), lr=config["lr"])

        times: dict[str, list[float]] = {
            k: [] for k in ("ours", "usual", "ours_eval", "usual_eval", "model")
        }
        train_set = PILDigits(data.train.images, data.train.labels)
        val_set = PILDigits(data.val.images, data.val.labels)
        for epoch in range(epochs + 1):  # epoch 0 warms both up and is not counted
            # Alternating the two loops spreads any noise from other work on the machine.
            model, optimizer = fresh()
            started = time.perf_counter()
            # Our loop converts the split once per trial; that conversion is counted.
            train_x, train_y = to_inputs(data.train.images), data.train.labels
            train_epoch(
                model, optimizer, train_x, train_y, batch, torch.Generator().manual_seed(epoch)
            )
            ours = time.perf_counter() - started
            started = time.perf_counter()
            evaluate(model, to_inputs(data.val.images), data.val.labels)
            ours_eval = time.perf_counter() - started

            model, optimizer = fresh()
            loader = DataLoader(
                train_set,
                batch_size=batch,
                shuffle=True,
                generator=torch.Generator().manual_seed(epoch),
            )
            started = time.perf_counter()
            usual_train_epoch(model, optimizer, loader)
            usual = time.perf_counter() - started
            started = time.perf_counter()
            usual_evaluate(model, DataLoader(val_set, batch_size=USUAL_EVAL_BATCH))
            usual_eval = time.perf_counter() - started

            # The ceiling for any loop: the model's own steps over batches made before the
            # clock starts (no shuffle, no indexing, no conversion).
            model, optimizer = fresh()
            batches = [
                (train_x[i : i + batch], train_y[i : i + batch]) for i in range(0, n_train, batch)
            ]
            started = time.perf_counter()
            model_steps(model, optimizer, batches)
            model_only = time.perf_counter() - started
            if epoch:
                measured = (ours, usual, ours_eval, usual_eval, model_only)
                for key, value in zip(times, measured, strict=True):
                    times[key].append(value)
        results[label] = {
            "train_samples_per_s": {
                k: n_train / statistics.median(times[k]) for k in ("ours", "usual", "model")
            },
            "eval_samples_per_s": {
                k: n_val / statistics.median(times[f"{k}_eval"]) for k in ("ours", "usual")
            },
            "eval_batch": {"ours": EVAL_BATCH, "usual": USUAL_EVAL_BATCH},
        }
    return {"configs": results, "n_train": n_train, "n_val": n_val, "epochs": epochs}
