"""Benchmark 9: which rows the training loss looks at (`--loss`), on one configuration.

The tutorial's configuration trained with each loss of `models.train.STEP_LOSSES` (same
data, seed and epochs: the loss is the only difference) and judged on MNIST's t10k
digits: final accuracy, area under the accuracy-by-row curve, and the first rows at
which accuracy reaches 50% and 90%. Cheap next to a search, it is how `--loss all`'s
weighting was chosen; benchmark 8 compares whole searches.
"""

from __future__ import annotations

import time

import torch

from bench import anytime
from bench.anytime import figures
from bench.common import (
    BenchConfig,
    Searches,
    has_t10k,
    load_t10k,
    run_child,
    stat,
    summary,
    table,
)
from bench.systems import train_trial
from models.train import STEP_LOSSES, evaluate
from search.data import load_dataset
from search.space import SEED_CONFIG

TITLE = "9. Which rows the loss looks at"
FIGURES = (*anytime.FIGURES, "seconds")


def run(c: BenchConfig, searches: Searches) -> dict | None:
    if not has_t10k(c, TITLE):
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
        for loss in STEP_LOSSES
    }
    sizes = {"epochs": epochs, "dataset": c.data_dir or c.dataset, "seeds": c.seeds}
    return {"sizes": sizes, "rows": rows, "by_loss": by}


def measure(
    t10k_dir: str, dataset: str, data_dir: str | None, epochs: int, seed: int
) -> dict[str, dict]:
    """In a child process: the tutorial's configuration trained with each loss, judged."""
    torch.set_num_threads(1)  # as a search's trial runs
    t10k = load_t10k(t10k_dir)
    data = load_dataset(dataset, data_dir, seed=seed)
    out = {}
    for loss in STEP_LOSSES:
        started = time.perf_counter()
        model, trained = train_trial(SEED_CONFIG, data, epochs, seed, loss)
        for _ in trained:
            pass
        seconds = time.perf_counter() - started
        out[loss] = figures(evaluate(model, t10k)) | {"seconds": seconds}
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
