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
