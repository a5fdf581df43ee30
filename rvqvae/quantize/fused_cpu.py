"""The ``fused`` backend: a small C++ kernel, built for this CPU at first use, loaded by ctypes.

It computes the same scores as :mod:`rvqvae.quantize.chunked` (centred on the codebook mean,
weights folded into the codebook) but never writes a score to memory: each tile of
``MR rows x 2 SIMD registers of codewords`` lives in registers and is reduced into a running
per-row (min, index) before the next tile, so the search runs at the speed of the arithmetic
instead of the speed of an N x K matrix (the kernel's layout and tie rule are described in
``fused_cpu.cpp``). The distance returned for the chosen codeword is recomputed directly from
the difference, as in every backend. Results do not depend on the blocking or thread count.

Build. ``fused_cpu.cpp`` is compiled with ``$CXX`` (else ``g++``, ``c++`` or ``clang++``) and
``-O3 -march=native`` into ``$RVQVAE_HOME/kernels/build/`` (default ``~/.cache/rvqvae``), named
by a hash of the source, compiler, flags and CPU, so a new CPU or compiler gets its own build
(about a second) and later processes load it at once. Without a compiler the backend is not
available (``auto`` falls back to ``chunked``) and asking for it by name raises a
:class:`~rvqvae.errors.UserError` saying what to install.

Blocking (rows per block, codeword panels per cache group) comes from
:mod:`rvqvae.quantize.tuning`: measured once per CPU, thread count and shape class, cached,
overridable.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from rvqvae.atomic import atomic_path
from rvqvae.errors import UserError
from rvqvae.home import cache_root
from rvqvae.quantize.chunked import CodebookPlan, compute_dtype
from rvqvae.quantize.toolchain import COMPILERS, cxx_compiler

SOURCE = Path(__file__).with_name("fused_cpu.cpp")
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-fopenmp")
"""With ``-march=<$RVQVAE_FUSED_MARCH or native>``. ``-fopenmp``: torch's own libgomp (same
soname, loaded first) then runs the threads; a compiler without OpenMP gets a second try
without it (threads from ``std::thread``). ``RVQVAE_FUSED_MARCH=x86-64-v3`` (AVX2) or
``x86-64`` (SSE2) builds another instruction set's kernel, e.g. to test it on this machine."""


class KernelBuildError(UserError):
    """The fused kernel could not be built or loaded (no compiler, a failed compile)."""


def available(device: torch.device) -> bool:
    """CPU tensors, and the kernel builds (or is already built) on this machine."""
    if device.type != "cpu":
        return False
    try:
        library()
    except KernelBuildError:
        return False
    return True


def why_unavailable(device: torch.device) -> str:
    """Why :func:`available` is False on ``device`` ('' when it is available)."""
    if device.type != "cpu":
        return "it runs on CPU tensors only"
    try:
        library()
    except KernelBuildError as error:
        return str(error)
    return ""


def nearest_fused(
    x: torch.Tensor,
    codebook: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    blocking: tuple[int, int],
    threads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`~rvqvae.quantize.chunked.nearest_chunked`, one C++ call.

    ``blocking`` = ``(rows per block, panels per group)`` (the ``fused`` backend passes the
    tuned one: :func:`rvqvae.quantize.tuning.nearest_tuned`); ``threads`` defaults to
    ``torch.get_num_threads()``.
    """
    dtype = compute_dtype(x.dtype)
    x = x.to(dtype).contiguous()
    codebook = codebook.to(dtype).contiguous()
    weights = None if weights is None else weights.to(dtype).contiguous()
    threads = threads or torch.get_num_threads()
    n, dim = x.shape
    k = codebook.shape[0]
    rows, group = blocking
    plan = CodebookPlan.build(codebook, weights)
    scaled = plan.scaled_t.t().contiguous()
    centre, sqnorm = plan.centre.contiguous(), plan.sqnorm.contiguous()
    indices = torch.empty(n, dtype=torch.int64)
    distances = torch.empty(n, dtype=dtype)
    lib = library()
    search = lib.rvq_fused_f64 if dtype == torch.float64 else lib.rvq_fused_f32
    search(
        x.data_ptr(), centre.data_ptr(), scaled.data_ptr(), sqnorm.data_ptr(),
        None if weights is None else weights.data_ptr(), codebook.data_ptr(),
        n, k, dim, int(rows), int(group), int(threads), indices.data_ptr(), distances.data_ptr(),
    )
    return indices, distances


def tile_shape(dtype: torch.dtype) -> tuple[int, int]:
    """``(MR, NR)``: rows and codewords of one register tile of the built kernel."""
    lib = library()
    return lib.rvq_fused_mr(), lib.rvq_fused_nr(torch.empty((), dtype=dtype).element_size())


def library() -> ctypes.CDLL:
    """The built kernel, loaded (built first if this CPU/compiler has no build yet).

    Built and loaded once per process; a failure is remembered and raised again at once.
    """
    if isinstance(_LOADED.get("lib"), Exception):
        raise _LOADED["lib"]
    if "lib" not in _LOADED:
        try:
            _LOADED["lib"] = _load(build())
        except KernelBuildError as error:
            _LOADED["lib"] = error
            raise
    return _LOADED["lib"]


_LOADED: dict = {}


def _load(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise KernelBuildError(
            f"the fused kernel {path} does not load ({error}); delete it to rebuild, "
            "or use backend='chunked'"
        ) from error
    pointer, size, count = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for search in (lib.rvq_fused_f32, lib.rvq_fused_f64):
        search.argtypes = [pointer] * 6 + [size] * 3 + [count] * 3 + [pointer] * 2
        search.restype = None
    lib.rvq_fused_mr.restype = ctypes.c_int
    lib.rvq_fused_nr.argtypes = [ctypes.c_int]
    return lib


def build() -> Path:
    """Compile ``fused_cpu.cpp`` for this CPU unless a matching build exists; return its path."""
    compiler = find_compiler()
    flags = (f"-march={os.environ.get('RVQVAE_FUSED_MARCH') or 'native'}", *FLAGS)
    identity = "\n".join([
        SOURCE.read_text(), compiler, _compiler_version(compiler), " ".join(flags), cpu_identity(),
    ])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = build_dir() / f"fused_cpu-{digest}.so"
    if target.exists():
        return target
    with atomic_path(target) as tmp:
        done = _compile(compiler, flags, tmp)
        if done.returncode != 0:  # e.g. clang without libomp: build with std::thread instead
            done = _compile(compiler, tuple(f for f in flags if f != "-fopenmp"), tmp)
        if done.returncode != 0:
            tail = " ".join(done.stderr.strip().splitlines()[-3:])[:400]
            raise KernelBuildError(
                f"building the fused kernel with {compiler} failed ({tail}); "
                "use backend='chunked' or set CXX to another compiler"
            )
    return target


def _compile(compiler: str, flags: tuple[str, ...], out: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([compiler, *flags, "-o", str(out), str(SOURCE)],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KernelBuildError(f"building the fused kernel failed: {error}") from error


def find_compiler() -> str:
    """The compiler (:func:`rvqvae.quantize.toolchain.cxx_compiler`); a clear error if none."""
    found = cxx_compiler()
    if found:
        return found
    wanted = os.environ.get("CXX")
    raise KernelBuildError(
        "the fused quantizer backend builds a small C++ kernel at first use and found no C++ "
        f"compiler ({'CXX=' + wanted if wanted else ', '.join(COMPILERS)} not on PATH); "
        "install one (e.g. apt-get install g++) or use backend='chunked'"
    )


def build_dir() -> Path:
    return cache_root() / "kernels" / "build"


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """The CPU model and its feature flags (what ``-march=native`` compiles for)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    return f"{model} | {fields.get('flags', '')}"


def cpu_model() -> str:
    """The CPU model name alone (for tables and cache keys people read)."""
    return cpu_identity().split(" | ")[0]


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return ""
