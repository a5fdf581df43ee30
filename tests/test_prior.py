"""The gated PixelCNN prior: causality and receptive field, normalisation, sampling, training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.models import create_model
from rvqvae.models.prior import GatedPixelCNN


def _prior(num_codes=6, **kwargs) -> GatedPixelCNN:
    torch.manual_seed(0)
    return GatedPixelCNN(num_codes, **{"channels": 8, "layers": 3, "kernel": 5, **kwargs}).double()


@pytest.mark.parametrize("position", [(0, 0), (0, 3), (2, 6), (3, 3), (5, 0), (6, 5)])
def test_logits_depend_exactly_on_earlier_positions_in_raster_order(position):
    """Changing the code at p leaves logits at every q <= p unchanged and changes every q > p
    (3 layers of kernel 5 see the whole 7x7 past)."""
    prior = _prior()
    generator = torch.Generator().manual_seed(1)
    codes = torch.randint(6, (4, 7, 7), generator=generator)
    changed = codes.clone()
    row, col = position
    changed[:, row, col] = (codes[:, row, col] + 1) % 6
    with torch.no_grad():
        before, after = prior(codes), prior(changed)
    diff = (before - after).abs().amax(dim=(0, 1))  # 7 x 7
    p = row * 7 + col
    for r, c in itertools.product(range(7), range(7)):
        q = r * 7 + c
        if q <= p:
            assert diff[r, c] < 1e-12, f"logits at {(r, c)} changed when code at {position} did"
        else:
            assert diff[r, c] > 1e-6, f"logits at {(r, c)} do not see the code at {position}"


def test_probabilities_of_all_grids_sum_to_one():
    """An autoregressive model is normalised only if it is causal: sum over all 3^4 grids = 1."""
    prior = _prior(num_codes=3)
    grids = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)
    total = torch.exp(-prior.nll(grids)).sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_samples_follow_the_model_distribution():
    prior = _prior(num_codes=2)
    grids = torch.tensor(list(itertools.product(range(2), repeat=3))).view(-1, 1, 3)
    probs = torch.exp(-prior.nll(grids))
    samples = prior.float().sample(10000, (1, 3), generator=torch.Generator().manual_seed(0))
    index = (samples.view(-1, 3) * torch.tensor([4, 2, 1])).sum(1)
    freq = torch.bincount(index, minlength=8).double() / 10000
    # 4 standard errors of a binomial proportion
    tolerance = 4 * torch.sqrt(probs * (1 - probs) / 10000)
    assert torch.all((freq - probs).abs() <= tolerance), (freq, probs)


def test_row_by_row_logits_are_the_full_forward_pass():
    """The sampler runs the vertical stack once per row and then only the row's own horizontal
    stack per position: every row's logits equal those of the full forward pass (in float64,
    so that no CPU's summation order can tell them apart)."""
    prior = _prior(num_codes=6)
    codes = torch.randint(6, (8, 7, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = prior(codes)
        for row in range(7):
            context = prior._row_context(codes[:, :row + 1])
            by_row = prior._row_logits(codes[:, row:row + 1], context)[:, :, 0]
            torch.testing.assert_close(by_row, full[:, :, row], rtol=0, atol=1e-12)


def test_sampler_draws_what_the_full_forward_sampler_draws():
    """Same generator, same grids as drawing each position from ``self(codes[:, :row + 1])``
    (the sampler before the row-by-row speedup); in float64, so that no CPU's summation order
    can move a draw."""
    prior = _prior(num_codes=6)
    generator = torch.Generator().manual_seed(5)
    reference = torch.zeros(16, 7, 7, dtype=torch.long)
    with torch.no_grad():
        for row, col in itertools.product(range(7), range(7)):
            probs = torch.softmax(prior(reference[:, :row + 1])[:, :, row, col], dim=1)
            reference[:, row, col] = torch.multinomial(probs, 1, generator=generator)[:, 0]
    grids = prior.sample(16, (7, 7), generator=torch.Generator().manual_seed(5))
    assert torch.equal(grids, reference)


def test_sampling_is_reproducible_from_the_generator():
    prior = _prior().float()
    first = prior.sample(5, (7, 7), generator=torch.Generator().manual_seed(3))
    again = prior.sample(5, (7, 7), generator=torch.Generator().manual_seed(3))
    other = prior.sample(5, (7, 7), generator=torch.Generator().manual_seed(4))
    assert first.shape == (5, 7, 7) and first.dtype == torch.int64
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_fit_learns_a_deterministic_pattern():
    """Grids whose every code is fixed by its left/upper neighbour become almost certain."""
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(4, (256, 1, 1), generator=generator)
    offsets = torch.arange(4).view(1, 2, 2)  # code(r, c) = first + r*2 + c  (mod 4)
    codes = (first + offsets) % 4
    torch.manual_seed(0)
    prior = GatedPixelCNN(4, channels=16, layers=2, kernel=3)
    history = prior.fit(codes, epochs=20, batch_size=128, lr=2e-2, generator=generator)
    assert [h["epoch"] for h in history] == list(range(20))
    assert history[-1]["loss"] < history[0]["loss"]
    # only the first code is random: the ideal NLL per grid is log(4) = 1.386 nats
    assert prior.nll(codes).mean().item() < 1.386 + 0.15


def test_rejects_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        GatedPixelCNN(4, kernel=4)


def _pattern_codes(n: int = 256) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(4, (n, 1, 1), generator=generator)
    return (first + torch.arange(4).view(1, 2, 2)) % 4


def test_constant_schedule_is_the_default_and_keeps_the_rate():
    """The default schedule trains exactly as an explicit "constant" one (same weights)."""
    codes, fitted = _pattern_codes(), []
    for kwargs in ({}, {"schedule": "constant"}):
        torch.manual_seed(0)
        prior = GatedPixelCNN(4, channels=8, layers=2, kernel=3)
        history = prior.fit(codes, epochs=3, batch_size=64, lr=1e-2,
                            generator=torch.Generator().manual_seed(1), **kwargs)
        assert [h["lr"] for h in history] == [1e-2] * 3
        fitted.append(prior.state_dict())
    assert all(torch.equal(fitted[0][k], fitted[1][k]) for k in fitted[0])


def test_cosine_schedule_anneals_the_rate_over_every_step_and_still_learns():
    """Each epoch's last step uses lr * (1 + cos(pi * s / S)) / 2 (s: steps before it, S: all
    steps), so the rate falls to ~0 at the end; the pattern is still learnt."""
    codes = _pattern_codes()
    torch.manual_seed(0)
    prior = GatedPixelCNN(4, channels=16, layers=2, kernel=3)
    history = prior.fit(codes, epochs=10, batch_size=100, lr=2e-2, schedule="cosine",
                        generator=torch.Generator().manual_seed(0))
    steps_per_epoch, total = 3, 30  # ceil(256 / 100) = 3 batches an epoch
    for h in history:
        done = (h["epoch"] + 1) * steps_per_epoch - 1
        expected = 2e-2 * (1 + math.cos(math.pi * done / total)) / 2
        assert h["lr"] == pytest.approx(expected, rel=1e-9)
    assert history[-1]["lr"] < 1e-4
    assert prior.nll(codes).mean().item() < 1.386 + 0.15  # as the constant-rate test above


def test_unknown_schedule_is_one_clear_error():
    with pytest.raises(UserError, match=r"prior schedule 'linear' is not supported; choose one "
                                        r"of constant, cosine"):
        GatedPixelCNN(4).fit(_pattern_codes(8), epochs=1, schedule="linear")
    with pytest.raises(UserError, match=r"prior_schedule='linear' is not supported"):
        create_model("vqvae", prior_schedule="linear")


def test_an_epoch_of_a_given_size_is_shuffled_passes_cut_there():
    """epoch_size 100 over 40 grids: passes of 40, 40 and 20 (batches 64 + 36); the mean loss is
    per grid drawn. epoch_size = N trains exactly as one pass (same weights)."""
    codes = _pattern_codes(40)
    sizes: list[int] = []
    torch.manual_seed(0)
    prior = GatedPixelCNN(4, channels=8, layers=2, kernel=3)
    prior.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    history = prior.fit(codes, epochs=2, batch_size=64, lr=1e-2, epoch_size=100,
                        generator=torch.Generator().manual_seed(0))
    assert sizes == [64, 36, 64, 36] and len(history) == 2
    fitted = []
    for kwargs in ({}, {"epoch_size": 40}):
        torch.manual_seed(0)
        prior = GatedPixelCNN(4, channels=8, layers=2, kernel=3)
        prior.fit(codes, epochs=2, batch_size=16, lr=1e-2,
                  generator=torch.Generator().manual_seed(1), **kwargs)
        fitted.append(prior.state_dict())
    assert all(torch.equal(fitted[0][k], fitted[1][k]) for k in fitted[0])
