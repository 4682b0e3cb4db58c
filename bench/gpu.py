"""Benchmark 11: trials on a GPU, against the same trials on CPU cores.

For a machine with a CUDA device (`python -m bench --scale full --only gpu`, a few
minutes); elsewhere it says it is skipped. Two measurements:

- **Epoch time** of three configurations of the space (the tutorial's, the smallest and
  the largest network), trained by `models.train` exactly as a trial trains: on one CPU
  thread (a 1-CPU trial) and on the GPU (a whole GPU, nothing else on it).
- **Whole searches**, same trials, epoch cap and seed: every trial on one CPU core (as many
  at once as the machine has cores), and four trials sharing each GPU
  (`--gpus-per-trial 0.25`, one CPU each). Each search's run folder says which device
  trained each trial (trials.csv, `device`); the GPU search must say `cuda` for all.
"""

from __future__ import annotations

import statistics
from functools import partial

import torch

from bench.common import BenchConfig, Searches, fmt, goal, run_child, table
from models.train import build, evaluate, timed, train_epoch
from search.data import load_dataset
from search.space import SEED_CONFIG

TITLE = "11. GPU trials"
EPOCH_CONFIGS = {
    "tutorial (1x128, batch 100)": SEED_CONFIG,
    "smallest (1x16, batch 256)": {**SEED_CONFIG, "hidden_size": 16, "batch_size": 256},
    "largest (3x256, batch 32)": {
        **SEED_CONFIG,
        "num_layers": 3,
        "hidden_size": 256,
        "batch_size": 32,
    },
}
GPU_SHARE = 0.25


def epoch_seconds(config: dict, data, device: str, epochs: int, seed: int = 0) -> float:
    """Median seconds of a training epoch plus its evaluation on `device`; on CUDA after
    one epoch of warm-up (kernel selection, the allocator), which the CPU does not need."""
    model, optimizer = build(config, data.shape_for(data.train), seed, device)
    train, val = data.train.tensors(device), data.val.tensors(device)
    warm_up = 1 if device == "cuda" else 0

    def one_epoch(epoch: int) -> None:
        shuffle = torch.Generator().manual_seed(epoch)
        train_epoch(model, optimizer, train, int(config["batch_size"]), shuffle)
        evaluate(model, val)

    laps = [timed(partial(one_epoch, epoch), device) for epoch in range(warm_up + epochs)]
    return statistics.median(laps[warm_up:])


def measure(
    epochs: int,
    seed: int,
    dataset: str = "mnist-5k",
    data_dir: str | None = None,
    devices: tuple[str, ...] = ("cpu", "cuda"),
) -> dict:
    """In a child process: epoch seconds per configuration and device (CPU: one thread)."""
    torch.set_num_threads(1)
    data = load_dataset(dataset, data_dir, seed=seed)
    seconds = {
        label: {device: epoch_seconds(config, data, device, epochs, seed) for device in devices}
        for label, config in EPOCH_CONFIGS.items()
    }
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"seconds": seconds, "n_train": len(data.train), "gpu": name, "epochs": epochs}


def run(c: BenchConfig, searches: Searches) -> dict | None:
    if not torch.cuda.is_available():
        print(f"{TITLE}: skipped, no CUDA device on this machine")
        return None
    seed = c.seeds[0]
    epochs = run_child({"kind": "gpu", "epochs": 2, "seed": seed}, c)
    speedups = {label: s["cpu"] / s["cuda"] for label, s in epochs["seconds"].items()}
    cpu = searches.get("ours", seed)
    gpu = searches.get("ours", seed, gpus_per_trial=GPU_SHARE)
    return {
        "sizes": {"trials": c.trials, "max_epochs": c.max_epochs, "seed": seed},
        "epochs": epochs,
        "speedups": speedups,
        "searches": {"cpu": _search_row(cpu), "gpu": _search_row(gpu)},
    }


def goals(r: dict) -> list[dict]:
    cpu, gpu = r["searches"]["cpu"], r["searches"]["gpu"]
    on_cuda = (gpu["devices"] or {}).get("cuda", 0)
    trials = sum((gpu["devices"] or {}).values())
    return [
        goal(
            "every trial of the GPU search trains on CUDA",
            f"{on_cuda} of {trials} trials on cuda ({r['epochs']['gpu']})",
            trials > 0 and on_cuda == trials,
        ),
        goal(
            "the GPU search (4 trials per GPU) is no slower than one trial per CPU core",
            f"{gpu['wall_s']:.0f} s against {cpu['wall_s']:.0f} s",
            gpu["wall_s"] <= cpu["wall_s"],
        ),
    ]


def _search_row(r: dict) -> dict:
    keep = ("wall_s", "best_val_acc", "test_acc", "epochs", "devices", "cpus")
    return {k: r.get(k) for k in keep}


def render(r: dict) -> str:
    e = r["epochs"]
    epoch_rows = [
        [label, f"{s['cpu']:.2f}", f"{s['cuda']:.2f}", f"{r['speedups'][label]:.1f}x"]
        for label, s in e["seconds"].items()
    ]
    search_rows = [
        [
            name,
            f"{s['wall_s']:.0f}",
            fmt(s["best_val_acc"], ".4f"),
            fmt(s["test_acc"], ".4f"),
            s["epochs"],
            ", ".join(f"{k}: {v}" for k, v in (s["devices"] or {}).items()),
        ]
        for name, s in (
            (
                f"one trial per CPU core ({r['searches']['cpu']['cpus']} cores)",
                r["searches"]["cpu"],
            ),
            (f"{1 / GPU_SHARE:.0f} trials per GPU", r["searches"]["gpu"]),
        )
    ]
    return "\n\n".join(
        [
            f"GPU: {e['gpu']}. Seconds per epoch (training on {e['n_train']} digits and "
            f"evaluating), median of {e['epochs']} epochs (on the GPU after a warm-up one); "
            "CPU at one thread, as a 1-CPU trial trains.",
            table(epoch_rows, ["configuration", "CPU s", "GPU s", "speed-up"]),
            f"Whole searches: {r['sizes']['trials']} trials, {r['sizes']['max_epochs']}-epoch "
            f"cap, seed {r['sizes']['seed']}.",
            table(
                search_rows, ["search", "wall s", "best val_acc", "test acc", "epochs", "devices"]
            ),  # fmt: skip
        ]
    )
