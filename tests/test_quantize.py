"""Nearest-codeword search: every backend against float64 brute force (rvqvae.quantize.reference).

Agreement rule (the documented tie rule): the lowest index wins exact ties; where a backend's
index differs from the brute-force argmin, the true distance of its choice must exceed the true
minimum by no more than the rounding tolerance of the GEMM form,
``TOL[dtype] * (|x - m|_w^2 + max_k |e_k - m|_w^2)`` (m = codebook mean), and the distance it
returns must be the true distance of its choice.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.quantize import (
    BACKENDS,
    auto_backend_name,
    available_backends,
    nearest,
    nearest_directional,
    pairwise_distances,
)
from rvqvae.quantize.chunked import first_argmin, nearest_chunked
from rvqvae.quantize.reference import (
    reference_directional_distances,
    reference_distances,
    reference_nearest,
)

TOL = {torch.float32: 2e-6, torch.float64: 1e-14}
RETURNED_RTOL = {torch.float32: 2e-6, torch.float64: 1e-13}
# compiled costs seconds of compilation and triton runs in a subprocess: both tested separately
FAST_CPU_BACKENDS = [
    b for b in ("torch-cdist", "chunked", "fused") if b in available_backends("cpu")
]
SHAPES = [(1000, 37, 7), (1, 1, 3), (257, 1, 1), (129, 130, 70), (513, 64, 16), (50, 300, 5)]


def make_problem(n, k, d, *, dtype=torch.float32, offset=0.0, seed=0, weighted=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64) + offset
    codebook = torch.randn(k, d, generator=generator, dtype=torch.float64) + offset
    weights = None
    if weighted:
        weights = torch.rand(d, generator=generator, dtype=torch.float64) * 3
        weights[::3] = 0.0  # zero weights are allowed and must simply drop coordinates
    return x.to(dtype), codebook.to(dtype), None if weights is None else weights.to(dtype)


def assert_matches_reference(x, codebook, weights, indices, distances, *, min_exact=0.99):
    """Indices agree up to near-ties, returned distances are the true ones of the choice."""
    assert indices.dtype == torch.int64 and indices.shape == (x.shape[0],)
    assert distances.dtype == x.dtype and distances.shape == (x.shape[0],)
    truth = reference_distances(x, codebook, weights)
    true_min = truth.min(dim=1).values
    chosen = truth.gather(1, indices[:, None]).squeeze(1)
    w = torch.ones(x.shape[1], dtype=torch.float64) if weights is None else weights.double()
    centre = codebook.double().mean(0)
    scale = ((x.double() - centre).square() @ w) + ((codebook.double() - centre).square() @ w).max()
    excess = chosen - true_min
    assert bool((excess <= TOL[x.dtype] * scale).all()), f"max excess {excess.max().item():.3g}"
    # Rows whose best codeword is clear of the second by more than the float tolerance must
    # match exactly; in near-ties which one wins depends on the CPU's summation order, so
    # only the share given by ``min_exact`` is asked of all rows (0.99: one row in 100).
    gaps = truth.topk(2, dim=1, largest=False).values.diff(dim=1).squeeze(1) \
        if truth.shape[1] > 1 else torch.full_like(true_min, math.inf)
    clear = gaps > 4 * TOL[x.dtype] * scale
    argmin = truth.argmin(dim=1)
    assert bool((indices[clear] == argmin[clear]).all()), "a clear nearest codeword was missed"
    exact = (indices == argmin).double().mean().item()
    ties = int((~clear).sum())
    assert exact >= min(min_exact, 1 - ties / len(indices)), (
        f"only {exact:.3f} of indices equal the brute-force argmin ({ties} near-ties)")
    torch.testing.assert_close(
        distances.double(), chosen, rtol=RETURNED_RTOL[x.dtype], atol=TOL[x.dtype] * 1e-3
    )


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS + ["auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_random_inputs_match_brute_force(backend, dtype, weighted, shape):
    x, codebook, weights = make_problem(*shape, dtype=dtype, weighted=weighted)
    indices, distances = nearest(x, codebook, weights, backend=backend)
    assert_matches_reference(x, codebook, weights, indices, distances)


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS)
@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_large_norm_vectors_do_not_cancel(backend, offset, weighted):
    x, codebook, weights = make_problem(2000, 64, 16, offset=offset, weighted=weighted)
    indices, distances = nearest(x, codebook, weights, backend=backend)
    assert_matches_reference(x, codebook, weights, indices, distances)


def test_large_norm_problem_defeats_the_naive_expanded_form():
    """The large-norm test above has teeth: uncentred |x|^2 - 2x.e + |e|^2 fails on it."""
    x, codebook, _ = make_problem(2000, 64, 16, offset=1e4)
    naive = (codebook.square().sum(1) - 2 * x @ codebook.T).argmin(1)
    agreement = (naive == reference_nearest(x, codebook)[0]).double().mean().item()
    assert agreement < 0.5


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_ties_pick_the_lowest_index(backend, dtype):
    x, codebook, _ = make_problem(300, 20, 8, dtype=dtype, seed=1)
    doubled = torch.cat([codebook, codebook, codebook])  # every codeword three times
    indices, distances = nearest(x, doubled, backend=backend)
    reference = reference_nearest(x, codebook)[0]
    torch.testing.assert_close(indices, reference)  # the first copy, never a later one


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_codewords_themselves_have_distance_zero(backend, weighted):
    _, codebook, weights = make_problem(1, 100, 24, offset=500.0, weighted=weighted, seed=2)
    indices, distances = nearest(codebook, codebook, weights, backend=backend)
    if weights is None:  # weighted: codewords equal on the weighted coordinates could tie
        torch.testing.assert_close(indices, torch.arange(100))
    assert bool((distances == 0).all())


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_near_ties_disagree_only_within_tolerance(backend, dtype):
    generator = torch.Generator().manual_seed(3)
    codebook = torch.randn(40, 32, generator=generator, dtype=torch.float64) * 10
    a, b = torch.randint(0, 40, (2, 500), generator=generator)
    b = torch.where(a == b, (b + 1) % 40, b)
    midpoints = (codebook[a] + codebook[b]) / 2  # equidistant from two codewords
    x = midpoints + 1e-7 * torch.randn(500, 32, generator=generator, dtype=torch.float64)
    x, codebook = x.to(dtype), codebook.to(dtype)
    indices, distances = nearest(x, codebook, backend=backend)
    assert_matches_reference(x, codebook, None, indices, distances, min_exact=0.0)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 5000])
def test_chunk_boundaries_do_not_change_results(chunk_rows):
    x, codebook, weights = make_problem(333, 45, 12, weighted=True)
    expected = nearest_chunked(x, codebook, weights)
    got = nearest_chunked(x, codebook, weights, chunk_rows=chunk_rows)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)


@pytest.mark.parametrize("backend", FAST_CPU_BACKENDS + ["auto"])
def test_empty_input_returns_empty_tensors(backend):
    for dtype in (torch.float32, torch.float64):
        indices, distances = nearest(
            torch.empty(0, 5, dtype=dtype), torch.randn(3, 5), backend=backend
        )
        assert indices.shape == (0,) and indices.dtype == torch.int64
        assert distances.shape == (0,) and distances.dtype == dtype


def test_half_precision_input_returns_its_dtype():
    x, codebook, _ = make_problem(100, 16, 8)
    indices, distances = nearest(x.half(), codebook.half())
    assert distances.dtype == torch.float16
    reference = reference_nearest(x.half(), codebook.half())
    assert (indices == reference[0]).double().mean().item() >= 0.99


def test_pairwise_distances_match_brute_force_far_from_origin():
    x, codebook, weights = make_problem(200, 30, 9, offset=1e3, weighted=True)
    got = pairwise_distances(x, codebook, weights)
    assert got.shape == (200, 30) and got.dtype == torch.float32 and bool((got >= 0).all())
    truth = reference_distances(x, codebook, weights)
    torch.testing.assert_close(got.double(), truth, rtol=1e-4, atol=1e-3)


# -- directional distance -------------------------------------------------------------------

def make_covariance(d, *, rank=None, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(d, rank or d, generator=generator, dtype=torch.float64)
    return (factor @ factor.T / d).to(dtype)


@pytest.mark.parametrize("backend", ["chunked", "torch-cdist", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["random", "far", "low-rank", "tiny-d"])
def test_directional_matches_brute_force(backend, dtype, case):
    n, k, d, offset, rank = {
        "random": (300, 37, 20, 0.0, None), "far": (300, 37, 20, 1e3, None),
        "low-rank": (300, 37, 20, 0.0, 3), "tiny-d": (257, 5, 1, 0.0, None),
    }[case]
    x, codebook, _ = make_problem(n, k, d, dtype=dtype, offset=offset, seed=4)
    covariance = make_covariance(d, rank=rank, dtype=dtype)
    indices, distances = nearest_directional(x, codebook, covariance, eps=1e-3, backend=backend)
    truth = reference_directional_distances(x, codebook, covariance, eps=1e-3)
    true_min = truth.min(1).values
    chosen = truth.gather(1, indices[:, None]).squeeze(1)
    rtol = 1e-3 if dtype == torch.float32 else 1e-9
    assert bool((chosen <= true_min * (1 + rtol) + rtol).all())
    assert (indices == truth.argmin(1)).double().mean().item() >= 0.98
    torch.testing.assert_close(distances.double(), chosen, rtol=rtol, atol=rtol)
    assert distances.dtype == dtype


def test_directional_distance_is_zero_at_a_codeword():
    _, codebook, _ = make_problem(1, 25, 6, seed=5)
    indices, distances = nearest_directional(codebook, codebook, make_covariance(6))
    torch.testing.assert_close(indices, torch.arange(25))
    assert bool((distances == 0).all())


def test_directional_rejects_backends_without_it():
    with pytest.raises(UserError, match="has no directional distance"):
        nearest_directional(torch.randn(4, 3), torch.randn(2, 3), torch.eye(3), backend="compiled")


# -- errors and backend selection -----------------------------------------------------------

def test_empty_codebook_is_a_value_error():
    with pytest.raises(ValueError, match=r"codebook is empty \(K = 0\)"):
        nearest(torch.randn(4, 3), torch.empty(0, 3))


@pytest.mark.parametrize(
    "weights, message",
    [(torch.ones(4), r"weights must have shape \(3,\), got \(4,\)"),
     (torch.tensor([1.0, -1.0, 1.0]), "weights must be non-negative")],
)
def test_bad_weights_are_value_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        nearest(torch.randn(4, 3), torch.randn(2, 3), weights)


def test_mismatched_dimensions_are_value_errors():
    with pytest.raises(ValueError, match="x has D=3 but codebook has D=4"):
        nearest(torch.randn(4, 3), torch.randn(2, 4))


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(UserError) as error:
        nearest(torch.randn(4, 3), torch.randn(2, 3), backend="fast")
    assert str(error.value) == (
        "quantizer backend 'fast' is unknown; "
        "known: auto, chunked, compiled, fused, torch-cdist, triton"
    )


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreter active")
def test_triton_on_cpu_without_interpreter_is_unavailable():
    assert "triton" not in available_backends("cpu")
    with pytest.raises(UserError, match="'triton' is not available on cpu; available there: "):
        nearest(torch.randn(4, 3), torch.randn(2, 3), backend="triton")


def test_auto_is_fused_on_cpu_when_it_builds_and_every_backend_is_described():
    expected = "fused" if "fused" in available_backends("cpu") else "chunked"
    assert auto_backend_name("cpu") == expected
    assert all(entry.description for entry in BACKENDS.entries())


# -- compiled and triton ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif("compiled" not in available_backends("cpu"), reason="no torch.compile here")
def test_compiled_matches_brute_force():
    for weighted in (False, True):
        x, codebook, weights = make_problem(300, 37, 7, offset=1e3, weighted=weighted)
        indices, distances = nearest(x, codebook, weights, backend="compiled")
        assert_matches_reference(x, codebook, weights, indices, distances)


TRITON_SCRIPT = """
import sys, torch
from rvqvae.quantize import available_backends, nearest
from rvqvae.quantize.triton_kernel import nearest_triton
assert "triton" in available_backends("cpu"), available_backends("cpu")
problems = torch.load(sys.argv[1])
torch.save([nearest(x, e, w, backend="triton") if config is None
            else nearest_triton(x, e, w, config=config) for x, e, w, config in problems],
           sys.argv[2])
"""


def run_triton_interpreted(problems, tmp_path):
    """``[(x, codebook, weights, config or None)]`` through the triton backend in a subprocess
    with ``TRITON_INTERPRET=1`` (it must be set before Triton is imported)."""
    torch.save(problems, tmp_path / "in.pt")
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(tmp_path / "out.pt")


def test_triton_kernel_under_the_interpreter_matches_brute_force(tmp_path):
    pytest.importorskip("triton")
    problems = [
        (*make_problem(n, k, d, dtype=dtype, offset=offset, weighted=weighted, seed=i), None)
        for i, (n, k, d, dtype, offset, weighted) in enumerate([
            (100, 37, 3, torch.float32, 0.0, False), (77, 130, 70, torch.float32, 1e3, True),
            (1, 1, 5, torch.float32, 0.0, False), (65, 64, 16, torch.float64, 0.0, True),
            (130, 200, 33, torch.float64, 1e4, False),
        ])
    ]
    problems.append((problems[0][0], torch.cat([problems[0][1]] * 2), None, None))  # exact ties
    results = run_triton_interpreted(problems, tmp_path)
    for (x, codebook, weights, _), (indices, distances) in zip(problems, results, strict=True):
        assert_matches_reference(x, codebook, weights, indices, distances)
    # exact ties (every codeword twice): assert_matches_reference above holds the choice to a
    # copy of a nearest codeword. Which copy is not asserted: under the interpreter, tl.dot is
    # numpy's matmul, whose rounding depends on a codeword's place in its tile on some CPUs
    # (an AMD EPYC picked a second copy in 1 row of 100), so the copies are not bit-equal.


@pytest.mark.slow
def test_every_triton_config_is_right_at_the_edges_of_its_tiles(tmp_path):
    """Each entry of the config table, interpreted, one past and one short of its row, codeword
    and D tiles (ragged last tiles, masked columns, a partial D slice)."""
    pytest.importorskip("triton")
    from rvqvae.quantize.triton_kernel import CONFIGS

    problems = []
    for seed, (name, tiles) in enumerate(CONFIGS.items()):
        dtype = torch.float64 if name == "float64" else torch.float32
        for n, k, d in [(tiles.block_n + 1, tiles.block_k - 1, tiles.block_d + 1),
                        (tiles.block_n - 1, tiles.block_k + 1, 3)]:
            x, codebook, weights = make_problem(n, k, d, dtype=dtype, seed=seed, weighted=d > 3)
            problems.append((x, codebook, weights, name))
    results = run_triton_interpreted(problems, tmp_path)
    for (x, codebook, weights, _), (indices, distances) in zip(problems, results, strict=True):
        assert_matches_reference(x, codebook, weights, indices, distances)


def test_triton_config_rule_and_table():
    from rvqvae.quantize.triton_kernel import CONFIGS, pick_config

    assert pick_config(16, 64, torch.float32) == "small-k"
    assert pick_config(64, 64, torch.float16) == "small-k"
    assert pick_config(65, 64, torch.float32) == "default"
    assert pick_config(1023, 8, torch.float32) == "default"
    assert pick_config(1024, 256, torch.float32) == "large-k"
    assert pick_config(4096, 64, torch.float64) == "float64"
    for tiles in CONFIGS.values():  # tl.dot needs >= 16 per side; arange needs powers of two
        for size in (tiles.block_n, tiles.block_k, tiles.block_d):
            assert size >= 16 and size & (size - 1) == 0
        assert tiles.num_warps in (1, 2, 4, 8, 16) and tiles.num_stages >= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["chunked", "triton", "torch-cdist"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_cuda_backends_match_brute_force(backend, weighted):
    if backend not in available_backends("cuda"):
        pytest.skip(f"{backend} unavailable on cuda")
    for shape, offset in [((1000, 37, 7), 0.0), ((4097, 513, 64), 1e3), ((1, 1, 3), 0.0)]:
        x, codebook, weights = make_problem(*shape, offset=offset, weighted=weighted)
        weights_cuda = None if weights is None else weights.cuda()
        indices, distances = nearest(x.cuda(), codebook.cuda(), weights_cuda, backend=backend)
        assert_matches_reference(x, codebook, weights, indices.cpu(), distances.cpu())


def test_reference_helper_has_teeth():
    """The agreement check rejects a wrong answer (guards against a vacuous helper)."""
    x, codebook, _ = make_problem(50, 10, 4)
    indices, distances = reference_nearest(x, codebook)
    with pytest.raises(AssertionError):
        assert_matches_reference(x, codebook, None, (indices + 1) % 10, distances.float())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_row_argmin_equals_torch_argmin_on_ties_tiny_gaps_and_nan(dtype):
    generator = torch.Generator().manual_seed(6)
    scores = torch.randn(400, 77, generator=generator, dtype=torch.float64).round(decimals=1)
    scores = scores.to(dtype)  # rounding to 0.1 makes exact ties common
    steps = torch.randint(0, 3, (77,), generator=generator).to(dtype)
    scores[4] = steps * (1e-40 if dtype == torch.float32 else 1e-300)  # gaps below 2^-100
    scores[5] = steps * torch.finfo(dtype).smallest_normal / 4  # subnormal gaps
    scores[6, 5] = float("nan")
    out = torch.empty(400, dtype=torch.int64)
    first_argmin(scores.clone(), out=out, work=torch.empty_like(scores))
    torch.testing.assert_close(out, scores.argmin(dim=1))


def test_one_compiler_rule_and_one_auto_rule_for_every_backend(monkeypatch):
    """`fused` and `compiled` look for the same C++ compiler ($CXX first); `auto` for the
    directional distance is the first auto backend that has one (chunked, never fused)."""
    from rvqvae.quantize import compiled, fused_cpu
    from rvqvae.quantize.backends import auto_backend_name
    from rvqvae.quantize.toolchain import cxx_compiler

    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    assert cxx_compiler() is None and not compiled.available(torch.device("cpu"))
    with pytest.raises(fused_cpu.KernelBuildError, match="CXX=no-such-compiler-xyz"):
        fused_cpu.find_compiler()
    monkeypatch.delenv("CXX")
    assert auto_backend_name("cpu", directional=True) == "chunked"
    assert auto_backend_name("meta", directional=True) == "chunked"
