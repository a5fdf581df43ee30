"""pytest-benchmark suite: the headline shape (N=65,536, K=512, D=64, float32) per contender.

Run with ``pytest benchmarks --benchmark-enable`` (not part of ``tests/``); compare groups
within one run only — the machine is shared and absolute numbers drift.
"""

from __future__ import annotations

import pytest
import torch

from bench.kernels.contenders import contenders
from bench.kernels.grid import HEADLINE, Case
from bench.kernels.timing import make_problem

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ENTRANTS = {entrant.name: entrant for entrant in contenders(DEVICE)}


@pytest.mark.parametrize("distance", ["plain", "weighted"])
@pytest.mark.parametrize("name", sorted(ENTRANTS))
def test_headline_throughput(benchmark, name, distance):
    case = Case(**HEADLINE, distance=distance)
    entrant = ENTRANTS[name]
    problem = make_problem(case, DEVICE)
    rows = entrant.rows_timed(case.n, case.k, case.d, problem.x.element_size())
    problem = type(problem)(problem.x[:rows], problem.codebook, problem.weights)
    run = entrant.prepare(problem)
    run()  # warm-up / compile
    benchmark.group = f"headline {distance}"
    benchmark.extra_info.update(rows_timed=rows, device=DEVICE)
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["vectors_per_s"] = rows / benchmark.stats.stats.median
