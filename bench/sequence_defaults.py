"""Benchmark 16: the measurements behind two defaults for sequence data.

- **Patches.** On long series the search reads several time points per step (`patch`).
  Which patch is best, and what each costs, is measured here with the tutorial's network
  (1x128, Adam 1e-3, batch 32), 5-fold cross-validation and six epochs per set: its
  out-of-fold accuracy, its folds' ensemble on the archive's test split, and its seconds
  per epoch. If one patch won everywhere it could be fixed; it does not, so the space
  searches it (`search.space.patch_choices`).
- **The early objective's loss.** `--objective early` trains with `--loss uniform` unless
  told otherwise: the tutorial's network (64 wide, dropout 0.1) trained with each loss at
  two learning rates, its stopping rule chosen on the out-of-fold series and applied to
  the folds' ensemble on test.

Both run one process per set on one thread (`python -m bench --scale full --only
sequence_defaults`); neither needs Ray.
"""

from __future__ import annotations

import time

from bench.common import BenchConfig, Searches, log, run_child, table

TITLE = "16. Sequence data: the patch and the early objective's loss, measured"
PATCH_SETS = {
    "GunPoint": (1, 2, 4, 8, 16),
    "ArrowHead": (2, 4, 8, 16, 32),
    "BasicMotions": (1, 2, 4, 8),
}
LOSS_SETS = {"GunPoint": 4, "ItalyPowerDemand": 1}  # set: its tutorial patch
LOSSES = ("last", "mixed", "all", "uniform")
LRS = (1e-3, 3e-3)
PATCH_EPOCHS, LOSS_EPOCHS = 6, 12


def run(c: BenchConfig, searches: Searches) -> dict:
    rows = []
    for name, patches in PATCH_SETS.items():
        log.info("patches on %s", name)
        job = {"kind": "sequence_defaults", "what": "patches", "name": name, "seed": 0}
        rows += run_child(job | {"options": list(patches)}, c)
    losses = []
    for name, patch in LOSS_SETS.items():
        log.info("losses on %s", name)
        job = {"kind": "sequence_defaults", "what": "losses", "name": name, "seed": 0}
        losses += run_child(job | {"options": [patch]}, c)
    return {
        "sizes": {"patch_epochs": PATCH_EPOCHS, "loss_epochs": LOSS_EPOCHS},
        "patches": rows,
        "losses": losses,
    }


def measure(what: str, name: str, seed: int, options: list[int]) -> list[dict]:
    """In a child process, one thread: each patch (`what` "patches") or each loss and
    learning rate (`what` "losses", at patch options[0]) on archive set `name`."""
    import torch

    from models.early import outcomes
    from models.lstm import Ensemble, steps_of
    from models.train import evaluate_probs, fit, predict_proba
    from search.data import load_dataset
    from search.trainable import TrialData

    torch.set_num_threads(1)
    data = load_dataset(f"ucr:{name}", seed=seed)
    test = data.test.tensors()
    runs = (
        [
            {"patch": p, "loss": "last", "lr": 1e-3, "hidden_size": 128, "dropout": 0.0}
            for p in options
        ]
        if what == "patches"
        else [
            {"patch": options[0], "loss": loss, "lr": lr, "hidden_size": 64, "dropout": 0.1}
            for loss in LOSSES
            for lr in LRS
        ]
    )
    epochs = PATCH_EPOCHS if what == "patches" else LOSS_EPOCHS
    rows = []
    for r in runs:
        config = {"num_layers": 1, "forget_bias": 1.0, "batch_size": 32} | r
        folds = TrialData.of(data).fold_runs(config, seed, torch.device("cpu"))
        started = time.perf_counter()
        results = list(fit(folds, batch_size=32, epochs=epochs, seed=seed, loss=r["loss"]))
        seconds = (time.perf_counter() - started) / epochs
        last = results[-1].val
        ensemble = Ensemble([f.model for f in folds]).eval()
        probs = predict_proba(ensemble, test)
        judged = evaluate_probs(probs, test.labels, test.lengths, r["patch"])
        steps = steps_of(test.lengths, r["patch"])
        (rule,) = outcomes(
            probs, test.labels, steps, test.lengths, r["patch"], (last.early.threshold,)
        )
        rows.append(
            {
                "set": name,
                **r,
                "steps": int(steps.max()),
                "epoch_s": seconds,
                "cv_acc": max(e.val.acc for e in results),
                "test_acc": judged.acc,
                "val_hm": last.early.hm,
                "test_hm": rule.hm,
                "threshold": last.early.threshold,
            }
        )
    return rows


def render(r: dict) -> str:
    s = r["sizes"]
    patches = table(
        [
            {
                "set": p["set"],
                "patch": p["patch"],
                "steps": p["steps"],
                "s / epoch": f"{p['epoch_s']:.2f}",
                "best out-of-fold acc": f"{p['cv_acc']:.3f}",
                "test acc (its folds' ensemble)": f"{p['test_acc']:.3f}",
            }
            for p in r["patches"]
        ]
    )
    losses = table(
        [
            {
                "set": p["set"],
                "--loss": p["loss"],
                "lr": f"{p['lr']:g}",
                "test acc": f"{p['test_acc']:.3f}",
                "out-of-fold HM": f"{p['val_hm']:.3f}",
                "test HM (threshold from validation)": f"{p['test_hm']:.3f}",
            }
            for p in r["losses"]
        ]
    )
    return "\n\n".join(
        [
            f"Patches: the tutorial's network (1x128, Adam 1e-3, batch 32, `--loss last`), "
            f"5-fold cross-validation, {s['patch_epochs']} epochs, one thread, seed 0.",
            patches,
            f"The early objective's loss: 1x64, dropout 0.1, batch 32, {s['loss_epochs']} "
            "epochs; the stopping rule's threshold chosen on the out-of-fold series, "
            "applied to the folds' ensemble on test.",
            losses,
        ]
    )
