"""No silent numerical garbage: non-finite inputs are refused, NaN losses stop training, and
every CPU backend of the quantizer agrees with the others or all reject the input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rvqvae.models import create_model
from rvqvae.quantize import available_backends, nearest, nearest_directional
from rvqvae.quantize.reference import reference_distances

CPU_BACKENDS = [b for b in ("torch-cdist", "chunked", "fused") if b in available_backends("cpu")]
DIRECTIONAL = ["torch-cdist", "chunked"]
TINY = {"vqvae": {"epochs": 1, "prior_epochs": 1, "codebook_size": 8, "hidden_channels": 8,
                  "residual_channels": 8, "latent_dim": 8},
        "nsvae": {"epochs": 1, "decoder_channels": (32, 32), "decoder_strides": (2, 2)}}
MODELS = ["vqvae", "rvqvae", "trimmed-vqvae", "oracle-vqvae", "nsvae", "vae"]


def _tiny(name: str, **changes):
    options = TINY["nsvae" if name in ("nsvae", "vae") else "vqvae"]
    return create_model(name, **{**options, **changes})


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_every_model_refuses_non_finite_images(name, bad):
    model = _tiny(name)
    images = torch.rand(8, 1, 28, 28)
    images[3, 0, 5, 5] = bad
    with pytest.raises(ValueError, match="images hold 1 NaN/infinite value"):
        model.fit(images, seed=0, contamination=0.25)
    with pytest.raises(ValueError, match="images hold 1 NaN/infinite value"):
        model.outlier_scores(images)


@pytest.mark.parametrize("name", ["vqvae", "nsvae"])
def test_bad_sample_counts_and_empty_training_sets_are_clear_errors(name):
    model = _tiny(name)
    with pytest.raises(ValueError, match=r"sample\(n\) needs an integer n >= 0, got -1"):
        model.sample(-1)
    with pytest.raises(ValueError, match="fit needs at least one training image, got 0"):
        model.fit(torch.rand(0, 1, 28, 28))


@pytest.mark.parametrize("name", ["vqvae", "nsvae"])
def test_a_nan_loss_stops_training_naming_epoch_and_batch(name):
    model = _tiny(name, lr=1e30, epochs=2)
    with pytest.raises(FloatingPointError,
                       match=r"training loss is nan at epoch \d+, batch \d+; lower the learning"):
        model.fit(torch.rand(64, 1, 28, 28), seed=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("where", ["x", "codebook", "weights"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nearest_rejects_non_finite_inputs_on_every_backend(backend, where, bad):
    x, codebook, weights = torch.rand(5, 3), torch.rand(4, 3), torch.rand(3)
    {"x": x, "codebook": codebook, "weights": weights}[where].view(-1)[0] = bad
    with pytest.raises(ValueError, match=f"{where} holds 1 NaN/infinite value"):
        nearest(x, codebook, weights, backend=backend)


@pytest.mark.parametrize("backend", DIRECTIONAL)
@pytest.mark.parametrize("where", ["x", "codebook", "covariance"])
def test_nearest_directional_rejects_non_finite_inputs(backend, where):
    x, codebook, covariance = torch.rand(5, 3), torch.rand(4, 3), torch.eye(3)
    {"x": x, "codebook": codebook, "covariance": covariance}[where][0, 0] = math.nan
    with pytest.raises(ValueError, match=f"{where} holds 1 NaN/infinite value"):
        nearest_directional(x, codebook, covariance, backend=backend)


def test_the_finite_check_counts_exactly_and_is_not_fooled_by_overflow():
    """The check's fast path (a finite sum) must never pass a NaN or an infinity, and a sum
    that overflows although every value is finite must not be reported as bad."""
    from rvqvae.errors import NonFiniteError

    huge = torch.full((10,), 3e38)  # each finite, the sum overflows to inf
    assert NonFiniteError.check(huge, "x holds", "") is huge
    mixed = torch.randn(1000)
    mixed[[3, 500, 999]] = torch.tensor([math.inf, -math.inf, math.nan])
    with pytest.raises(NonFiniteError, match="x holds 3 NaN/infinite value"):
        NonFiniteError.check(mixed, "x holds", "fix it")
    half = torch.full((4,), 60000.0, dtype=torch.float16)  # the half sum overflows
    assert NonFiniteError.check(half, "x holds", "") is half


def test_zero_coordinates_are_a_clear_error():
    with pytest.raises(ValueError, match="D = 0 coordinates"):
        nearest(torch.zeros(3, 0), torch.zeros(2, 0))


ENTRIES = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([math.nan, math.inf]))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 12), k=st.integers(1, 6), d=st.integers(1, 5),
       dtype=st.sampled_from([torch.float32, torch.float64]), weighted=st.booleans(),
       data=st.data())
def test_fuzzed_nearest_backends_agree_or_all_reject(n, k, d, dtype, weighted, data):
    def tensor(*shape, low=-1e3):
        values = data.draw(st.lists(ENTRIES if low < 0 else st.one_of(
            st.floats(0, 1e3, width=32), st.sampled_from([math.nan, math.inf])),
            min_size=math.prod(shape), max_size=math.prod(shape)))
        return torch.tensor(values, dtype=dtype).reshape(shape)

    x, codebook = tensor(n, d), tensor(k, d)
    weights = tensor(d, low=0) if weighted else None
    outcomes = []
    for backend in CPU_BACKENDS:
        try:
            outcomes.append(nearest(x, codebook, weights, backend=backend))
        except ValueError as error:
            assert "NaN/infinite" in str(error)
            outcomes.append(None)
    if any(o is None for o in outcomes):
        assert all(o is None for o in outcomes), "some backends accepted what others rejected"
        return
    exact = reference_distances(x.double(), codebook.double(), weights)
    best = exact.min(1).values if n else exact.new_zeros(0)
    scale = 1 + exact.abs().max() if n else 1
    for indices, distances in outcomes:
        assert indices.dtype == torch.int64 and distances.dtype == dtype
        chosen = exact.gather(1, indices[:, None])[:, 0] if n else best
        assert torch.all(chosen - best <= 1e-5 * scale)  # a (near-)minimum, never garbage


# ---------------------------------------------------- gradients, half types, overflow (#22)

ALL_CPU = ["auto", *CPU_BACKENDS, *(["compiled"] if "compiled" in available_backends("cpu")
                                    else [])]


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("where", ["x", "codebook", "weights"])
def test_nearest_refuses_inputs_that_require_grad_on_every_backend(backend, where):
    """chunked and compiled raised a raw autograd RuntimeError, fused/auto/torch-cdist answered
    (only cdist's distances carried a gradient): now one ValueError before any backend runs."""
    inputs = {"x": torch.rand(5, 3), "codebook": torch.rand(4, 3), "weights": torch.rand(3)}
    inputs[where].requires_grad_()
    with pytest.raises(ValueError, match=rf"^{where} requires grad, but a nearest-codeword "
                                         rf"search has no gradient on any backend; pass "
                                         rf"{where}\.detach\(\)"):
        nearest(inputs["x"], inputs["codebook"], inputs["weights"], backend=backend)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("weighted", [False, True])
def test_half_types_give_the_same_answer_on_every_backend(dtype, weighted):
    """torch-cdist raised NotImplementedError on float16/bfloat16 where the others worked."""
    generator = torch.Generator().manual_seed(0)
    x, codebook = (torch.randn(shape, generator=generator).to(dtype) for shape in ((40, 6),
                                                                                   (9, 6)))
    weights = torch.rand(6, generator=generator).to(dtype) if weighted else None
    exact = reference_distances(x.double(), codebook.double(),
                                None if weights is None else weights.double())
    for backend in CPU_BACKENDS:
        indices, distances = nearest(x, codebook, weights, backend=backend)
        assert distances.dtype == dtype, backend
        chosen = exact.gather(1, indices[:, None])[:, 0]
        assert torch.all(chosen - exact.min(1).values <= 1e-5 * (1 + exact.max())), backend
    for backend in ("chunked", "torch-cdist"):
        assert nearest_directional(x, codebook, torch.eye(6).to(dtype), backend=backend)[
            1].dtype == dtype


@pytest.mark.parametrize("backend", ALL_CPU)
def test_squared_distances_that_would_overflow_are_refused_on_every_backend(backend):
    """Finite inputs near 1e30 made every distance inf, and chunked/compiled chose other
    codewords than the rest: now one ValueError before any backend runs."""
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 1e30
    with pytest.raises(ValueError, match=r"^x and codebook values span [0-9.e+]+ \(D = 4\): "
                                         r"squared distances up to [0-9.e+]+ overflow "
                                         r"torch\.float32 \(largest 3\.4e\+38\); rescale the "
                                         r"inputs or pass float64 tensors$"):
        nearest(x, -x[:5], backend=backend)
    if backend != "compiled":  # (compiling for float64 takes long)
        assert nearest(x.double(), -x[:5].double(), backend=backend)[0].shape == (6,)


WIDE = st.one_of(st.floats(-10, 10), st.floats(allow_nan=False, allow_infinity=False))
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 8), k=st.integers(1, 5), d=st.integers(1, 4),
       dtype=st.sampled_from(DTYPES), weighted=st.booleans(), grad=st.booleans(),
       data=st.data())
def test_fuzzed_magnitudes_dtypes_and_gradients_agree_or_all_refuse(n, k, d, dtype, weighted,
                                                                    grad, data):
    """Any float64 value (cast to the dtype: large ones become inf in the narrow types), any
    dtype, with or without requires_grad: every CPU backend gives a true nearest codeword, or
    every one refuses with the same one-line ValueError."""
    def tensor(*shape, low=None):
        values = data.draw(st.lists(WIDE if low is None else st.floats(0, 1e6),
                                    min_size=math.prod(shape), max_size=math.prod(shape)))
        return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)

    x, codebook = tensor(n, d), tensor(k, d)
    weights = tensor(d, low=0) if weighted else None
    x.requires_grad_(grad)
    outcomes = []
    for backend in CPU_BACKENDS:
        try:
            outcomes.append(nearest(x, codebook, weights, backend=backend))
        except ValueError as error:
            assert "\n" not in str(error)
            outcomes.append(str(error))
    if any(isinstance(o, str) for o in outcomes):
        assert len(set(map(str, outcomes))) == 1, outcomes  # all refuse, with one message
        return
    exact = reference_distances(x.detach().double(), codebook.double(),
                                None if weights is None else weights.double())
    best = exact.min(1).values if n else exact.new_zeros(0)
    scale = 1 + exact.abs().max() if n else 1
    for indices, distances in outcomes:
        assert indices.dtype == torch.int64 and distances.dtype == dtype
        assert not distances.requires_grad
        chosen = exact.gather(1, indices[:, None])[:, 0] if n else best
        assert torch.all(chosen - best <= 1e-5 * scale)
