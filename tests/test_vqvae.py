"""VQ-VAE: straight-through gradients, the loss terms, EMA / dead-code restart, determinism,
persistence, scores and a short real-data run."""

from __future__ import annotations

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.models.base import GenerativeModel, create_model
from rvqvae.models.codebook import Codebook, perplexity
from rvqvae.models.vqvae import VQVAE

TINY = dict(hidden_channels=8, residual_channels=4, residual_blocks=1, latent_dim=4,
            codebook_size=8, prior_channels=8, prior_layers=1, prior_kernel=3, epochs=1,
            prior_epochs=1, batch_size=16)


def _images(n=32, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _encoder_grads(model):
    return [p.grad for p in model.encoder.parameters()]


def test_straight_through_gradient_reaches_the_encoder_from_the_recon_loss_alone():
    model = VQVAE(**TINY)
    terms = model.training_losses(_images(8))
    terms["recon_loss"].backward()
    grads = _encoder_grads(model)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # the codeword lookup is detached from the decoder path: no recon gradient to the codebook
    assert model.codebook.weight.grad is None or model.codebook.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("beta", [0.25, 0.0])
def test_beta_multiplies_the_commitment_term_only(beta):
    """d(quantisation loss)/d(encoder output) = beta * 2 (z - e) / numel and
    d/d(codebook) = 2 (e - z) / numel scattered to the chosen codewords, for any beta."""
    model = VQVAE(**TINY, beta=beta)
    images = _images(8)
    terms = model.training_losses(images)
    quantisation = terms["loss"] - terms["recon_loss"]
    last = model.encoder.layers[-1]  # 1x1 conv producing z_e: its bias gradient sums dL/dz
    bias_grad, codebook_grad = torch.autograd.grad(quantisation, [last.bias, model.codebook.weight])

    with torch.no_grad():
        z = model.encoder(images).permute(0, 2, 3, 1).reshape(-1, 4)
    codes = terms["codes"]
    e = model.codebook.weight.detach()[codes]
    expected_bias = beta * 2 * (z - e).sum(0) / z.numel()
    expected_codebook = torch.zeros_like(model.codebook.weight).index_add_(
        0, codes, 2 * (e - z) / z.numel())
    torch.testing.assert_close(bias_grad, expected_bias, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(codebook_grad, expected_codebook, rtol=1e-4, atol=1e-8)
    assert codebook_grad.abs().sum() > 0
    if beta == 0:
        assert bias_grad.abs().sum() == 0


def test_codes_are_the_nearest_codewords():
    model = VQVAE(**TINY)
    images = _images(4)
    codes = model.training_losses(images)["codes"]
    with torch.no_grad():
        z = model.encoder(images).permute(0, 2, 3, 1).reshape(-1, 4).double()
    brute = torch.cdist(z, model.codebook.weight.detach().double()).argmin(1)
    assert torch.equal(codes, brute)
    assert torch.equal(model.encode_codes(images).flatten(), brute)


def test_ema_update_matches_hand_computation():
    book = Codebook(3, 2, ema=True, decay=0.9, epsilon=1e-5)
    start = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    book.reset_to(start)
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    book.ema_update(vectors, torch.tensor([0, 0, 1]))
    count = torch.tensor([0.9 + 0.1 * 2, 0.9 + 0.1 * 1, 0.9])
    sums = 0.9 * start + 0.1 * torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    smoothed = (count + 1e-5) / (count.sum() + 3e-5) * count.sum()
    torch.testing.assert_close(book.weight.detach(), sums / smoothed[:, None])
    assert not book.weight.requires_grad


def test_ema_model_has_no_codebook_loss_and_moves_its_codebook():
    model = VQVAE(**{**TINY, "prior_epochs": 0}, codebook_update="ema", dead_code_restart=False)
    images = _images()
    assert model.training_losses(images)["codebook_loss"].item() == 0.0
    model.fit(images, seed=0, epochs=0)
    before = model.codebook.weight.detach().clone()
    model.fit(images, seed=0, epochs=1)
    assert not torch.equal(before, model.codebook.weight.detach())


def test_dead_code_restart_replaces_exactly_the_unused_codewords():
    book = Codebook(4, 2)
    original = book.weight.detach().clone()
    pool = torch.full((5, 2), 7.0)
    dead = torch.tensor([False, True, False, True])
    assert book.restart(dead, pool, torch.Generator().manual_seed(0)) == 2
    assert torch.equal(book.weight[~dead], original[~dead])
    assert torch.all(book.weight[dead] == 7.0)


def test_perplexity():
    assert perplexity(torch.tensor([5, 5, 5, 5])) == pytest.approx(4.0)
    assert perplexity(torch.tensor([0, 9, 0])) == pytest.approx(1.0)
    model = VQVAE(**TINY)
    value = model.codebook_perplexity(_images(8))
    assert 1.0 <= value <= 8.0


def test_same_seed_same_weights_and_different_seed_different_weights():
    images = _images()
    first, second, other = (VQVAE(**TINY) for _ in range(3))
    history = first.fit(images, seed=3)
    second.fit(images, seed=3)
    other.fit(images, seed=4)
    assert history == second.fit(images, seed=3)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    pairs = zip(first.state_dict().values(), other.state_dict().values(), strict=True)
    assert any(not torch.equal(a, c) for a, c in pairs if a.is_floating_point())
    assert torch.equal(first.sample(4, seed=1), second.sample(4, seed=1))


def test_history_fields():
    seen = []
    history = VQVAE(**TINY).fit(_images(), seed=0, epochs=2, on_epoch=seen.append)
    assert seen == history and [h["epoch"] for h in history] == [0, 1]
    for key in ("loss", "recon_loss", "codebook_loss", "commitment_loss", "perplexity"):
        assert all(isinstance(h[key], float) for h in history)


def test_save_load_round_trip(tmp_path):
    import rvqvae.models.vqvae  # noqa: F401  (registers "vqvae")

    model = create_model("vqvae", **TINY)
    images = _images()
    model.fit(images, seed=0)
    model.save(tmp_path / "model.pt")
    loaded = GenerativeModel.load(tmp_path / "model.pt")
    assert type(loaded) is VQVAE and loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for key, value in model.outlier_scores(images).items():
        assert torch.equal(value, loaded.outlier_scores(images)[key]), key
    assert torch.equal(model.sample(3, seed=2), loaded.sample(3, seed=2))


def test_scores_samples_and_reconstructions_have_the_promised_shapes():
    model = VQVAE(**TINY)
    images = _images(8)
    model.fit(images, seed=0)
    scores = model.outlier_scores(images)
    assert set(scores) == set(VQVAE.score_names)
    assert all(v.shape == (8,) and torch.isfinite(v).all() for v in scores.values())
    assert torch.equal(model.outlier_score(images), scores["recon"])
    samples = model.sample(5, seed=0)
    assert samples.shape == (5, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    assert model.reconstruct(images).shape == images.shape


def test_fit_adapts_to_the_channel_count():
    model = VQVAE(**TINY)
    model.fit(torch.rand(8, 3, 32, 32), seed=0)
    assert model.config.in_channels == 3 and model.grid_shape == (8, 8)
    assert model.sample(2).shape == (2, 3, 32, 32)


def test_bad_input_is_a_user_error():
    model = VQVAE(**TINY)
    with pytest.raises(UserError, match="must be multiples of 4 for the VQ models, got 30x30"):
        model.fit(torch.rand(4, 1, 30, 30))
    with pytest.raises(UserError, match=r"must be floats in \[0, 1\]"):
        model.fit(torch.rand(4, 1, 28, 28) * 255)
    with pytest.raises(UserError, match="recon_loss='l1' is not supported; choose one of bce, mse"):
        VQVAE(recon_loss="l1")


def test_loss_falls_on_a_small_real_scenario(real_data):
    from bench.scenarios import get_scenario

    data = get_scenario("mnist+fmnist@0.2").with_(train_size=500).build(0)
    images = data.train_images
    model = VQVAE(epochs=4, prior_epochs=1)
    history = model.fit(images, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    mean_image_error = (images - images.mean(0)).square().mean().item()
    recon_error = (model.reconstruct(images) - images).square().mean().item()
    assert recon_error < 0.5 * mean_image_error  # 0.025 vs 0.5 * 0.078


def test_the_default_loss_keeps_the_decoder_alive_where_mse_on_the_sigmoid_died(real_data):
    """Regression: with MSE on the sigmoid the ci preset's VQ-VAE decoded a black image on
    seeds 1-3 at epsilon 0 (recon MSE 0.110 = the mean squared pixel; the logits sank to about
    -66, where the sigmoid's gradient vanishes). The default, cross-entropy on the logits,
    trains on the same seeds (recon MSE 0.011-0.016). Only the default is asserted: whether
    MSE dies depends on the CPU's float order, so no test may rely on it."""
    from bench.presets import get_preset
    from bench.presets.spec import sized_scenario

    assert VQVAE.Config().recon_loss == "bce"
    scenario = sized_scenario(get_preset("ci"), "mnist+fmnist@0")
    errors = []
    for seed in (1, 2):
        images = scenario.build(seed).train_images
        torch.manual_seed(seed)
        model = VQVAE(epochs=4, prior_epochs=0)
        model.fit(images, seed=seed)
        errors.append((model.reconstruct(images[:500]) - images[:500]).square().mean().item())
    mean_squared_pixel = images.square().mean().item()  # the error of a black image, ~0.10
    assert max(errors) < 0.3 * mean_squared_pixel, errors


def test_two_threaded_training_is_bitwise_reproducible(real_data):
    """Regression: gathering codewords with ``table[codes]`` back-propagates through an
    accumulating index_put_, whose multi-threaded CPU kernel sums in varying order."""
    from bench.scenarios import get_scenario

    images = get_scenario("mnist+fmnist@0.3").with_(train_size=600).build(0).train_images
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        states = []
        for _ in range(2):
            model = create_model("vqvae", epochs=1, prior_epochs=0)
            model.fit(images, seed=0)
            states.append(model.state_dict())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
