"""Time every contender on every case of a grid; one result row per (repeat, case, contender).

Repeats: the whole grid is run ``repeats`` times (repeat r draws its problem with seed
``seed + r``); the ratios of a row compare contenders timed in the same repeat, and reports
take the median over repeats.

First call: each contender's first call (compilation for ``compiled``, building the kernel and
measuring its blocking for ``fused`` when this machine has no cached ones) is timed apart;
``compile_s`` = first call - median call, never part of the rates.

Timing: ``torch.utils.benchmark.Timer`` (which synchronises CUDA) with a fixed thread count
(``torch`` via the Timer, FAISS via ``omp_set_num_threads``); each contender is called once to
warm up (and compile), then measured in ``rounds`` interleaved rounds of ``blocked_autorange``
so a load burst on the shared machine hits all contenders alike. Median and IQR are taken over
all measured blocks. Each contender's indices are checked against float64 brute force on the
first ``check_rows`` rows (``agree`` = fraction of rows whose choice is the true minimum up to
the documented near-tie tolerance).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.benchmark import Timer

from bench.kernels.contenders import Contender, Problem, comparison_note, contenders
from bench.kernels.grid import Case
from rvqvae.errors import UserError
from rvqvae.quantize.reference import reference_distances

NEAR_TIE_TOL = {"float32": 2e-6, "float64": 1e-14}


def run_grid(
    cases: list[Case],
    *,
    device: str = "cpu",
    threads: int | None = None,
    min_run_time: float = 0.3,
    rounds: int = 3,
    check_rows: int = 256,
    seed: int = 0,
    repeats: int = 1,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """One dict per (repeat, case, contender) with timing, throughput and ratios
    (see ``_summarise``). ``only`` restricts the contenders by name (an unknown name is a
    :class:`UserError`)."""
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    threads = threads or torch.get_num_threads()
    _set_faiss_threads(threads)
    entrants = select(contenders(device), only, device)
    rows = []
    for repeat in range(repeats):
        for number, case in enumerate(cases, 1):
            progress(f"[{repeat * len(cases) + number}/{repeats * len(cases)}] {case.label()}"
                     + (f" (repeat {repeat + 1}/{repeats})" if repeats > 1 else ""))
            problem = make_problem(case, device, seed + repeat)
            for row in time_case(case, problem, entrants, threads=threads,
                                 min_run_time=min_run_time, rounds=rounds,
                                 check_rows=check_rows, progress=progress):
                rows.append({**row, "repeat": repeat, "seed": seed + repeat})
    return rows


def select(entrants: list[Contender], only: list[str] | None, device: str) -> list[Contender]:
    if not only:
        return entrants
    known = [entrant.name for entrant in entrants]
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UserError(
            f"contender {unknown[0]!r} is unknown or unavailable on {device}; "
            f"available: {', '.join(known)}"
        )
    return [entrant for entrant in entrants if entrant.name in only]


def make_problem(case: Case, device: str, seed: int = 0) -> Problem:
    """Gaussian queries and codebook (fixed seed); weights ``1 / (var + 1e-6)`` of the codebook."""
    generator = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, case.dtype)
    x = torch.randn(case.n, case.d, generator=generator, dtype=dtype)
    codebook = torch.randn(case.k, case.d, generator=generator, dtype=dtype)
    weights = 1 / (codebook.var(0) + 1e-6) if case.distance == "weighted" else None
    weights = None if weights is None else weights.to(device)
    return Problem(x.to(device), codebook.to(device), weights)


def time_case(case, problem, entrants: list[Contender], *, threads, min_run_time, rounds,
              check_rows, progress) -> list[dict]:
    itemsize = problem.x.element_size()
    runs, samples, agree, timed_rows, first_call = {}, {}, {}, {}, {}
    for entrant in entrants:
        rows = entrant.rows_timed(case.n, case.k, case.d, itemsize)
        sub = Problem(problem.x[:rows], problem.codebook, problem.weights)
        try:
            run = entrant.prepare(sub)
            started = time.perf_counter()
            indices = run()  # warm-up (and compilation, kernel build, blocking measurement)
            _synchronize(problem.x.device)
            first_call[entrant.name] = time.perf_counter() - started
        except Exception as error:  # noqa: BLE001 - one broken peer must not stop the grid
            progress(f"  {entrant.name}: failed ({type(error).__name__}: {error})")
            continue
        runs[entrant.name], samples[entrant.name], timed_rows[entrant.name] = run, [], rows
        agree[entrant.name] = (
            None if indices is None else _agreement(case, sub, indices, check_rows)
        )
    for _ in range(rounds):
        for name, run in runs.items():
            timer = Timer("run()", globals={"run": run}, num_threads=threads)
            samples[name].extend(timer.blocked_autorange(min_run_time=min_run_time).times)
    by_name = entrants_by_name(entrants)
    results = [
        {**_summarise(case, by_name[name], timed_rows[name], samples[name], agree[name], threads),
         "compile_s": max(0.0, first_call[name] - float(np.median(samples[name]))),
         "not_like_for_like": comparison_note(by_name[name], case.dtype, by_name.get("faiss"))}
        for name in runs
    ]
    _add_ratios(results)
    for row in results:
        progress(f"  {row['contender']:12s} {row['vectors_per_s'] / 1e6:8.3f} M vec/s"
                 f"  {row['pct_gemm'] or float('nan'):6.1f}% of gemm")
    return results


def entrants_by_name(entrants: list[Contender]) -> dict[str, Contender]:
    return {entrant.name: entrant for entrant in entrants}


def _summarise(case, entrant, rows, times, agree, threads) -> dict:
    times = np.asarray(times)
    median = float(np.median(times))
    q1, q3 = np.percentile(times, [25, 75])
    return {
        "n": case.n, "k": case.k, "d": case.d, "dtype": case.dtype, "distance": case.distance,
        "contender": entrant.name, "kind": entrant.kind, "rows_timed": rows,
        "median_s": median, "iqr_s": float(q3 - q1), "blocks": int(times.size),
        "vectors_per_s": rows / median, "gflops": 2 * rows * case.k * case.d / median / 1e9,
        "agree": agree, "threads": threads,
    }


def _add_ratios(results: list[dict]) -> None:
    """``ratio_faiss`` (throughput / FAISS's) and ``pct_gemm`` (100 x throughput / GEMM's)."""
    rate = {row["contender"]: row["vectors_per_s"] for row in results}
    for row in results:
        row["ratio_faiss"] = row["vectors_per_s"] / rate["faiss"] if "faiss" in rate else None
        row["pct_gemm"] = 100 * row["vectors_per_s"] / rate["gemm"] if "gemm" in rate else None


def _agreement(case: Case, problem: Problem, indices: torch.Tensor, check_rows: int) -> float:
    """Fraction of the first rows whose chosen codeword is a true nearest one (near-tie rule)."""
    rows = min(check_rows, problem.x.shape[0])
    x = problem.x[:rows].cpu()
    codebook = problem.codebook.cpu()
    weights = None if problem.weights is None else problem.weights.cpu()
    truth = reference_distances(x, codebook, weights)
    chosen = truth.gather(1, indices[:rows].cpu().long()[:, None]).squeeze(1)
    best = truth.min(1).values
    scale = best + truth.max(1).values  # a generous bound on |x - m|^2 + |e - m|^2
    return float((chosen - best <= NEAR_TIE_TOL[case.dtype] * scale).double().mean())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _set_faiss_threads(threads: int) -> None:
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(threads)
