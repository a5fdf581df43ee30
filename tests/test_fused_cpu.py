"""The ``fused`` CPU backend: blocking never changes a result, tuning is cached per machine key,
and a missing or failing compiler is one clear error (``auto`` then falls back to chunked).

Agreement with float64 brute force on the hard cases (ties, near-ties, far from the origin,
weights) is tested with every other CPU backend in ``test_quantize.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.quantize import auto_backend_name, available_backends, fused_cpu, nearest, tuning
from rvqvae.quantize.reference import reference_nearest

pytestmark = pytest.mark.skipif(
    "fused" not in available_backends("cpu"), reason="no C++ compiler: fused unavailable"
)


def problem(n, k, d, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=dtype)
    codebook = torch.randn(k, d, generator=generator, dtype=dtype)
    weights = torch.rand(d, generator=generator, dtype=dtype) * 2
    return x, codebook, weights


def tile_edges(dtype):
    """N and K at and around the register tile (MR rows, NR codewords) of the built kernel."""
    mr, nr = fused_cpu.tile_shape(dtype)
    return [(mr - 1, nr - 1), (mr, nr), (mr + 1, nr + 1), (3 * mr + 2, 5 * nr - 3), (1, 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_blocking_and_threads_never_change_a_result(dtype, weighted):
    """Every tuning candidate at the edges of the tile gives bit-identical indices and
    distances, and they are the float64 brute-force answer (random data: no near-ties)."""
    for n, k in tile_edges(dtype):
        for d in (1, 7, 64):
            x, codebook, weights = problem(n, k, d, dtype)
            weights = weights if weighted else None
            expected = fused_cpu.nearest_fused(x, codebook, weights, blocking=(1, 1), threads=1)
            truth = reference_nearest(x.double(), codebook.double(),
                                      None if weights is None else weights.double())[0]
            if d > 1:  # in 1-D many codewords are near-ties; test_quantize covers those
                torch.testing.assert_close(expected[0], truth)
            for blocking in tuning.candidates(k, d, dtype) + [(5000, 1000)]:
                for threads in (1, 2, 3):
                    got = fused_cpu.nearest_fused(x, codebook, weights, blocking=blocking,
                                                  threads=threads)
                    assert torch.equal(got[0], expected[0]), (n, k, d, blocking, threads)
                    assert torch.equal(got[1], expected[1]), (n, k, d, blocking, threads)


def test_many_rows_split_over_threads_match_one_thread():
    x, codebook, weights = problem(20_011, 300, 33)
    one = tuning.nearest_tuned(x, codebook, weights, threads=1)
    two = tuning.nearest_tuned(x, codebook, weights, threads=2)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_tuning_times_every_candidate_and_keeps_the_fastest(monkeypatch):
    seen = []

    def fake_search(x, codebook, weights=None, *, blocking, threads):
        seen.append(blocking)

    fastest = tuning.candidates(512, 64, torch.float32)[-2]
    monkeypatch.setattr(fused_cpu, "nearest_fused", fake_search)
    tuned = tuning.tune(512, 64, torch.float32, 2, timer=_PairTimer(lambda: seen[-1], fastest))
    assert (tuned.rows, tuned.group) == fastest
    assert tuned.seconds == 1.0
    assert tuned.candidates == len(tuning.candidates(512, 64, torch.float32))
    assert set(seen) == set(tuning.candidates(512, 64, torch.float32))


class _PairTimer:
    """A fake clock: each (start, stop) pair lasts 1 s for ``fastest``, 5 s for the others."""

    def __init__(self, current, fastest):
        self.current, self.fastest, self.now, self.calls = current, fastest, 0.0, 0

    def __call__(self):
        self.calls += 1
        if self.calls % 2 == 0:
            self.now += 1.0 if self.current() == self.fastest else 5.0
        return self.now


def test_tuned_blocking_is_cached_per_cpu_threads_dtype_and_shape_class(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.delenv("RVQVAE_FUSED_BLOCKING", raising=False)
    monkeypatch.delenv("RVQVAE_KERNEL_TUNING", raising=False)
    monkeypatch.setattr(tuning, "_MEMO", {})  # this process's memo, restored afterwards
    calls = []
    real_tune = tuning.tune
    monkeypatch.setattr(tuning, "tune", lambda *a, **k: calls.append(a) or real_tune(*a, **k))
    first = tuning.blocking_for(300, 33, torch.float32, 2)
    assert len(calls) == 1 and calls[0][:2] == (300, 33)
    assert tuning.blocking_for(500, 60, torch.float32, 2) == first  # same class: K<=512, D<=64
    tuning._MEMO.clear()
    assert tuning.blocking_for(400, 40, torch.float32, 2) == first  # read back from the file
    assert len(calls) == 1
    tuning.blocking_for(400, 40, torch.float32, 1)  # another thread count is another key
    tuning.blocking_for(400, 40, torch.float64, 2)  # another dtype too
    assert len(calls) == 3
    cache = json.loads(tuning.cache_path().read_text())
    key = tuning.tuning_key(300, 33, torch.float32, 2)
    assert key.startswith(fused_cpu.cpu_model()) and "threads=2" in key and "K<=512" in key
    assert (cache[key]["rows"], cache[key]["group"]) == first


def test_blocking_override_and_tuning_off(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.setenv("RVQVAE_FUSED_BLOCKING", "64, 3")
    assert tuning.blocking_for(512, 64, torch.float32, 2) == (64, 3)
    monkeypatch.setenv("RVQVAE_FUSED_BLOCKING", "64x3")
    with pytest.raises(UserError, match="is not 'rows,group' with two positive integers"):
        tuning.blocking_for(512, 64, torch.float32, 2)
    monkeypatch.delenv("RVQVAE_FUSED_BLOCKING")
    monkeypatch.setenv("RVQVAE_KERNEL_TUNING", "off")
    assert tuning.blocking_for(512, 64, torch.float32, 2) == tuning.default_blocking(
        512, 64, torch.float32)
    assert not tuning.cache_path().exists()  # nothing measured, nothing written


def test_a_machine_without_a_compiler_gets_one_clear_error_and_auto_falls_back(
        tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    monkeypatch.setattr(fused_cpu, "_LOADED", {})
    assert "fused" not in available_backends("cpu")
    assert auto_backend_name("cpu") == "chunked"
    message = (r"'fused' is not available on cpu: .*found no C\+\+ compiler "
               r"\(CXX=no-such-compiler-xyz not on PATH\); install one .* use backend='chunked'; "
               r"available there: ")
    with pytest.raises(UserError, match=message):
        nearest(torch.randn(4, 3), torch.randn(2, 3), backend="fused")


def test_a_failing_compile_says_so_and_writes_no_library(tmp_path, monkeypatch):
    fake = tmp_path / "broken-cxx"
    fake.write_text("#!/bin/sh\necho 'fatal: this compiler is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setattr(fused_cpu, "_LOADED", {})
    with pytest.raises(fused_cpu.KernelBuildError, match="failed .*this compiler is broken"):
        fused_cpu.library()
    with pytest.raises(fused_cpu.KernelBuildError):  # remembered: no second compile attempt
        fused_cpu.library()
    assert not list((tmp_path / "home").rglob("*.so"))


def test_a_compiler_without_openmp_builds_the_thread_fallback_with_equal_results(
        tmp_path, monkeypatch):
    compiler = fused_cpu.find_compiler()
    fake = tmp_path / "no-openmp-cxx"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && exit 1; done\n'
                    f'exec {compiler} "$@"\n')
    fake.chmod(0o755)
    x, codebook, weights = problem(5003, 200, 24)
    expected = tuning.nearest_tuned(x, codebook, weights, threads=2)
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setattr(fused_cpu, "_LOADED", {})
    got = fused_cpu.nearest_fused(x, codebook, weights, blocking=(256, 4), threads=2)
    assert len(list((tmp_path / "home").rglob("*.so"))) == 1
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


FUSED_SCRIPT = """
import sys, torch
from rvqvae.quantize import fused_cpu, tuning
problems = torch.load(sys.argv[1])
print(fused_cpu.library().rvq_fused_vector_bytes(), fused_cpu.tile_shape(torch.float32))
torch.save([tuning.nearest_tuned(x, e, w, threads=2) for x, e, w in problems], sys.argv[2])
"""


@pytest.mark.parametrize("march, vector_bytes", [("x86-64-v3", 32), ("x86-64", 16)])
def test_the_avx2_and_sse2_kernels_agree_with_brute_force_on_this_machine(march, vector_bytes,
                                                                         tmp_path):
    """The other instruction sets' code paths (6 x 16 and 4 x 8 float tiles), built for an
    older x86-64 level and run here: the same answers as float64 brute force."""
    if platform.machine() != "x86_64":
        pytest.skip("x86-64 instruction-set levels")
    problems = []
    for n, k, d in [(37, 5, 3), (501, 130, 64), (64, 33, 17)]:
        for dtype in (torch.float32, torch.float64):
            x, codebook, weights = problem(n, k, d, dtype)
            problems.append((x, codebook, weights if d > 3 else None))
    torch.save(problems, tmp_path / "in.pt")
    env = dict(os.environ, RVQVAE_FUSED_MARCH=march,
               RVQVAE_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-c", FUSED_SCRIPT, str(tmp_path / "in.pt"),
                           str(tmp_path / "out.pt")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == str(vector_bytes)  # really the other instruction set
    for (x, codebook, weights), (indices, distances) in zip(
            problems, torch.load(tmp_path / "out.pt"), strict=True):
        truth = reference_nearest(x.double(), codebook.double(),
                                  None if weights is None else weights.double())
        assert torch.equal(indices, truth[0])
        torch.testing.assert_close(distances.double(), truth[1], rtol=1e-5, atol=1e-6)
