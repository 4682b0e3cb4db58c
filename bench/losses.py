"""Benchmark 9: which rows the training loss looks at (`--loss`), on one configuration.

The tutorial's configuration trained with each loss of `models.train.ROW_LOSSES` (same
data, seed and epochs: the loss is the only difference) and judged on MNIST's t10k
digits: final accuracy, area under the accuracy-by-row curve, and the first rows at
which accuracy reaches 50% and 90%. Cheap next to a search, it is how `--loss all`'s
weighting was chosen; benchmark 8 compares whole searches.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.common import BenchConfig, Searches, run_child, stat, summary, table
from models.train import ROW_LOSSES, build, evaluate, fit, to_inputs
from search.data import find_idx_files, load_dataset, read_idx
from search.errors import UserError
from search.space import SEED_CONFIG

TITLE = "9. Which rows the loss looks at"
FIGURES = ("t10k_acc", "t10k_auc", "rows_to_50", "rows_to_90", "seconds")


def run(c: BenchConfig, searches: Searches) -> dict | None:
    try:
        find_idx_files(Path(c.t10k_dir))
    except UserError:
        print(f"{TITLE}: skipped, no MNIST t10k files in {c.t10k_dir} (nothing is downloaded)")
        return None
    epochs = c.winner_max_epochs or c.max_epochs
    rows = []
    for seed in c.seeds:
        job = {
            "kind": "losses",
            "t10k_dir": c.t10k_dir,
            "dataset": c.dataset,
            "data_dir": c.data_dir,
            "epochs": epochs,
            "seed": seed,
        }
        rows += [{"seed": seed, "loss": loss, **r} for loss, r in run_child(job, c).items()]
    by = {
        loss: {k: summary([r[k] for r in rows if r["loss"] == loss]) for k in FIGURES}
        for loss in ROW_LOSSES
    }
    sizes = {"epochs": epochs, "dataset": c.data_dir or c.dataset, "seeds": c.seeds}
    return {"sizes": sizes, "rows": rows, "by_loss": by}


def measure(
    t10k_dir: str, dataset: str, data_dir: str | None, epochs: int, seed: int
) -> dict[str, dict]:
    """In a child process: the tutorial's configuration trained with each loss, judged."""
    torch.set_num_threads(1)  # as a search's trial runs
    files = find_idx_files(Path(t10k_dir))
    images, labels = to_inputs(read_idx(files["test_images"])), read_idx(files["test_labels"])
    data = load_dataset(dataset, data_dir, seed=seed)
    out = {}
    for loss in ROW_LOSSES:
        model, optimizer = build(SEED_CONFIG, seed)
        started = time.perf_counter()
        batch = int(SEED_CONFIG["batch_size"])
        train, val = data.train.tensors(), data.val.tensors()
        for _ in fit(
            model, optimizer, train, val, batch_size=batch, epochs=epochs, seed=seed, loss=loss
        ):
            pass
        result = evaluate(model, images, labels)
        out[loss] = {
            "t10k_acc": result.acc,
            "t10k_auc": result.auc_rows,
            "rows_to_50": result.first_row_reaching(0.5),
            "rows_to_90": result.first_row_reaching(0.9),
            "seconds": time.perf_counter() - started,
        }
    return out


def render(r: dict) -> str:
    s = r["sizes"]
    rows = table(
        [
            {
                "--loss": loss,
                "t10k acc": stat(b["t10k_acc"], ".4f"),
                "t10k area": stat(b["t10k_auc"], ".3f"),
                "rows to 50%": stat(b["rows_to_50"], "g"),
                "rows to 90%": stat(b["rows_to_90"], "g"),
                "training s": stat(b["seconds"], ".0f"),
            }
            for loss, b in r["by_loss"].items()
        ]
    )
    return "\n\n".join(
        [
            f"The tutorial's configuration (1 layer of 128, Adam 1e-3, batch 100), "
            f"{s['epochs']} epochs on {s['dataset']}, one thread, seeds "
            f"{', '.join(map(str, s['seeds']))}; judged on MNIST's t10k digits. Medians "
            "[min–max] over seeds.",
            rows,
        ]
    )
