"""Side-by-side benchmarks of our search against a plain Optuna loop and a stock Ray Tune
script; `python -m bench` runs them and writes docs/benchmarks.md (see bench.__main__)."""
