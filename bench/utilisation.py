"""Core use: the share of a search's core-seconds spent training (a goal of benchmark 7)."""


def share(r: dict) -> float:
    """The share of a search's core-seconds (wall x CPUs) spent training and evaluating:
    its trials' `epoch_seconds`, and ours' confirmation's (recorded since 2026-11-30)."""
    return (r["busy_s"] + r.get("confirm_busy_s", 0.0)) / (r["wall_s"] * r["cpus"])
