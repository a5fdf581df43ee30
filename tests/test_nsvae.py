"""Gaussian-latent VAE and negative-sampling VAE: closed forms, the alternating adversarial
step against the authors' losses, determinism, persistence, and a small real-data fit."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import rvqvae.models.nsvae  # noqa: F401  (registers vae and nsvae)
from rvqvae.errors import UserError
from rvqvae.models.base import GenerativeModel, create_model
from rvqvae.models.gaussian import (
    kl_to_shifted_normal,
    kl_to_standard_normal,
    reconstruction_nll,
)
from rvqvae.models.nsvae import NSVAE
from rvqvae.models.vae import VAE

# A tiny network with the same structure as the paper's, so tests take milliseconds.
TINY = dict(
    latent_dim=4, encoder_channels=(4, 8), encoder_strides=(2, 2), decoder_dense_channels=8,
    decoder_channels=(8, 4), decoder_strides=(2, 2), batch_size=8, lr=1e-3,
)


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- closed forms ---------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [0.0, 8.0, -2.5])
def test_shifted_prior_kl_equals_torch_distributions(shift):
    gen = torch.Generator().manual_seed(3)
    mu = torch.randn((64, 10), generator=gen, dtype=torch.float64) * 4
    logvar = torch.randn((64, 10), generator=gen, dtype=torch.float64)
    expected = kl_divergence(
        Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.full_like(mu, shift), 1.0)
    ).sum(-1)
    torch.testing.assert_close(kl_to_shifted_normal(mu, logvar, shift), expected)
    if shift == 0.0:
        torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected)


def test_kl_of_prior_to_shifted_prior_is_d_m_squared_over_two():
    """The paper's figure: KL(N(0,I) || N(8*1, I)) = 10 * 64 / 2 = 320 for d = 10, m = 8."""
    zeros = torch.zeros((1, 10))
    assert kl_to_shifted_normal(zeros, zeros, 8.0).item() == pytest.approx(320.0)


def test_reconstruction_nll_equals_torch_distributions():
    gen = torch.Generator().manual_seed(4)
    means = torch.rand((5, 1, 6, 6), generator=gen, dtype=torch.float64) * 0.98 + 0.01
    binary = (torch.rand((5, 1, 6, 6), generator=gen) > 0.5).double()
    continuous = torch.rand((5, 1, 6, 6), generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        reconstruction_nll(binary, means, "bernoulli"),
        -Bernoulli(probs=means).log_prob(binary).flatten(1).sum(1),
    )
    torch.testing.assert_close(
        reconstruction_nll(continuous, means, "gaussian"),
        -Normal(means, 1.0).log_prob(continuous).flatten(1).sum(1),
    )


# -- the network and the scores -----------------------------------------------------------
def test_default_network_is_the_papers_grayscale_network():
    model = create_model("nsvae")
    cfg = model.config
    assert (cfg.latent_dim, cfg.negative_prior_shift, cfg.likelihood) == (10, 8.0, "bernoulli")
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.negatives) == (1e-4, 50, 100, "adversarial")
    convs = [m for m in model.encoder.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride[0], c.kernel_size[0]) for c in convs] == [
        (8, 2, 5), (16, 1, 5), (32, 2, 5), (64, 1, 5), (64, 2, 5)]
    assert model.encoder.mu.in_features == model.encoder.logvar.in_features == 64 * 4 * 4
    assert model.decoder.dense[0].out_features == 64 * 7 * 7
    deconvs = [m for m in model.decoder.convs if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.out_channels, c.stride[0]) for c in deconvs] == [(32, 2), (32, 2), (256, 1)]
    with torch.no_grad():
        mu, logvar = model.encoder(_images(2))
        out = model.decoder(mu)
    assert mu.shape == logvar.shape == (2, 10)
    assert out.shape == (2, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
    # conv kernels ~ N(0, sqrt(0.02)) as in the authors' code
    assert convs[3].weight.std().item() == pytest.approx(math.sqrt(0.02), rel=0.05)


def test_kl_score_is_zero_for_a_posterior_equal_to_the_prior():
    model = create_model("vae", **TINY)
    with torch.no_grad():
        for head in (model.encoder.mu, model.encoder.logvar):
            head.weight.zero_()
            head.bias.zero_()
        scores = model.outlier_scores(_images(6))
        assert torch.equal(scores["kl"], torch.zeros(6))
        model.encoder.mu.bias.fill_(0.5)  # mu = 0.5 * 1: KL = d * 0.5^2 / 2
        shifted = model.outlier_scores(_images(6))["kl"]
    torch.testing.assert_close(shifted, torch.full((6,), 4 * 0.25 / 2))


def test_neg_elbo_per_dim_is_kl_plus_reconstruction_at_the_posterior_mean_per_pixel():
    model = create_model("nsvae", **TINY)
    images = _images(5)
    with torch.no_grad():
        mu, logvar = model.encoder(images)
        expected = (kl_to_standard_normal(mu, logvar)
                    + reconstruction_nll(images, model.decoder(mu))) / 784
    scores = model.outlier_scores(images)
    torch.testing.assert_close(scores["neg_elbo_per_dim"], expected)
    assert set(scores) == set(NSVAE.score_names) and NSVAE.default_score == "kl"
    torch.testing.assert_close(model.outlier_score(images), scores["kl"])


def test_sample_is_reproducible_from_its_seed_and_in_unit_range():
    model = create_model("nsvae", **TINY)
    first, again, other = model.sample(7, seed=1), model.sample(7, seed=1), model.sample(7, seed=2)
    assert first.shape == (7, 1, 28, 28) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)


# -- training ---------------------------------------------------------------------------------
def test_adversarial_step_matches_the_authors_encoder_and_generator_losses():
    """One batch: the encoder gradient is that of enc_loss under the initial weights; then
    the generator gradient is that of gen_loss under the *updated* encoder (alternation)."""
    cfg = dict(TINY, alpha_gen=0.7, beta=1.3)
    model = create_model("nsvae", **cfg)
    images = _images(8)
    seen: dict[str, object] = {}
    _spy_steps(model, seen)
    model.fit(images, seed=5, epochs=1)

    # Encoder and generator only change in their own step.
    assert not _same(seen["enc_before"], seen["enc_after_enc"])
    assert _same(seen["dec_before"], seen["dec_after_enc"])
    assert _same(seen["enc_after_enc"], seen["enc_after_gen"])
    assert not _same(seen["dec_after_enc"], seen["dec_after_gen"])

    # Reference: the same draws as fit (batch order, then z~ noise, then z_p), explicit losses.
    ref = create_model("nsvae", **cfg)
    ref.init_weights(5)
    rng = torch.Generator().manual_seed(5)
    x = images[torch.randperm(8, generator=rng)]
    mu, logvar = ref.encoder(x)
    z_post = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=rng)
    z_prior = torch.randn(mu.shape, generator=rng)
    rec = reconstruction_nll(x, ref.decoder(z_post)).mean()
    neg_mu, neg_logvar = ref.encoder(ref.decoder(z_prior).detach())
    enc_loss = (kl_to_standard_normal(mu, logvar).mean()
                + 0.7 * kl_to_shifted_normal(neg_mu, neg_logvar, 8.0).mean() + 1.3 * rec)
    enc_grads = torch.autograd.grad(enc_loss, list(ref.encoder.parameters()))
    for got, want in zip(seen["enc_grads"], enc_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)

    ref.encoder.load_state_dict(seen["enc_after_enc"])
    gen_mu, gen_logvar = ref.encoder(ref.decoder(z_prior))
    gen_loss = (0.7 * kl_to_standard_normal(gen_mu, gen_logvar).mean()
                + 1.3 * reconstruction_nll(x, ref.decoder(z_post.detach())).mean())
    gen_grads = torch.autograd.grad(gen_loss, list(ref.decoder.parameters()))
    for got, want in zip(seen["dec_grads"], gen_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def _spy_steps(model: VAE, seen: dict[str, object]) -> None:
    """Record weights around each step and the gradients each optimizer applies."""
    encoder_step, generator_step = model._encoder_step, model._generator_step

    def spied_encoder_step(x, x_neg, rng, optimizer):
        seen["enc_before"], seen["dec_before"] = _state(model.encoder), _state(model.decoder)
        _record_grads_on_step(optimizer, model.encoder, seen, "enc_grads")
        result = encoder_step(x, x_neg, rng, optimizer)
        seen["enc_after_enc"], seen["dec_after_enc"] = _state(model.encoder), _state(model.decoder)
        return result

    def spied_generator_step(pending, optimizer):
        _record_grads_on_step(optimizer, model.decoder, seen, "dec_grads")
        result = generator_step(pending, optimizer)
        seen["enc_after_gen"], seen["dec_after_gen"] = _state(model.encoder), _state(model.decoder)
        return result

    model._encoder_step, model._generator_step = spied_encoder_step, spied_generator_step


def _record_grads_on_step(optimizer, module, seen, key):
    step = optimizer.step

    def recording_step(*args, **kwargs):
        seen[key] = [p.grad.detach().clone() for p in module.parameters()]
        return step(*args, **kwargs)

    optimizer.step = recording_step


@pytest.mark.parametrize(
    "name, options",
    [("vae", {}), ("nsvae", {}), ("nsvae", {"negatives": "noise"}),
     ("nsvae", {"negatives": "auxiliary"})],
)
def test_same_seed_gives_identical_weights_after_a_short_fit(name, options):
    images, negatives = _images(20), _images(12, seed=9)

    def fitted(seed):
        model = create_model(name, **TINY, **options)
        history = model.fit(images, seed=seed, epochs=2, negatives=negatives)
        return _state(model), history

    (first, history), (again, _), (other, _) = fitted(1), fitted(1), fitted(2)
    assert _same(first, again) and not _same(first, other)
    assert [r["epoch"] for r in history] == [0, 1]
    assert all(math.isfinite(r["loss"]) for r in history)
    if name == "nsvae":
        assert {"neg_kl", "neg_elbo", "rec", "kl"} <= set(history[0])


def test_save_load_round_trips_exactly(tmp_path):
    model = create_model("nsvae", **TINY, likelihood="gaussian", negative_prior_shift=5.0)
    model.fit(_images(16), seed=0, epochs=1)
    model.save(tmp_path / "nsvae.pt")
    loaded = GenerativeModel.load(tmp_path / "nsvae.pt")
    assert type(loaded) is NSVAE and loaded.config == model.config
    assert _same(_state(loaded), _state(model))
    probe = _images(5, seed=3)
    for name, values in model.outlier_scores(probe).items():
        assert torch.equal(loaded.outlier_scores(probe)[name], values)
    assert torch.equal(loaded.sample(4, seed=2), model.sample(4, seed=2))
    assert torch.equal(loaded.reconstruct(probe), model.reconstruct(probe))


# -- user errors --------------------------------------------------------------------------
def test_auxiliary_negatives_without_images_is_a_user_error():
    model = create_model("nsvae", **TINY, negatives="auxiliary")
    with pytest.raises(UserError) as error:
        model.fit(_images(8), epochs=1)
    assert str(error.value) == (
        "nsvae with negatives='auxiliary' needs negative images: pass "
        "fit(..., negatives=images) or use negatives='adversarial'"
    )


def test_bad_options_and_shapes_are_user_errors():
    with pytest.raises(UserError, match="negatives 'gan' is unknown; use one of adversarial, "
                                        "auxiliary, noise"):
        create_model("nsvae", negatives="gan")
    with pytest.raises(UserError, match="likelihood 'laplace' is unknown"):
        create_model("vae", likelihood="laplace")
    with pytest.raises(UserError, match=r"images must be a float tensor N x 1 x 28 x 28 in "
                                        r"\[0, 1\], got \(2, 3, 32, 32\)"):
        create_model("vae", **TINY).fit(torch.rand(2, 3, 32, 32))


def test_other_image_sizes_are_configurable():
    model = create_model("vae", **TINY, image_channels=3, image_size=32)
    history = model.fit(torch.rand(8, 3, 32, 32), epochs=1)
    assert len(history) == 1 and model.sample(2).shape == (2, 3, 32, 32)


# -- real data ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vae", "nsvae"])
def test_loss_falls_on_a_tiny_mnist_scenario(real_data, name):
    from bench.scenarios import get_scenario

    data = get_scenario("mnist+fmnist@0.2").with_(train_size=300).build(0)
    # The paper's encoder and a narrower decoder without the 256-channel stride-1 layer (~50x
    # cheaper); lr 1e-3 so that three epochs show learning.
    model = create_model(name, decoder_channels=(16, 16), decoder_strides=(2, 2), lr=1e-3)
    history = model.fit(data.train_images, seed=0, epochs=3)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["neg_elbo"] < 0.8 * history[0]["neg_elbo"]
    scores = model.outlier_scores(data.mixed_test_images[:200])
    assert all(torch.isfinite(v).all() and v.shape == (200,) for v in scores.values())


def test_layer_lists_from_toml_or_json_become_tuples():
    model = create_model("vae", **dict(TINY, decoder_channels=[8, 4], encoder_strides=[2, 2]))
    assert model.config == create_model("vae", **TINY).config
