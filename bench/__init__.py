"""bench: the rvqvae-bench harness (scenarios, runner, metrics, reports, kernel benchmarks).

``bench.load_results(run_dir)`` returns the records of a run as one pandas DataFrame.
"""

from __future__ import annotations

__all__ = ["load_results"]


def load_results(run_dir):
    """All result records under ``run_dir`` as a pandas DataFrame (one row per metric value)."""
    from bench.records import load_results as _load

    return _load(run_dir)
