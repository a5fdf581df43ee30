"""Training health: did the model of a cell learn at all?

A benchmark that compares recipes must not compare broken trainings by accident, nor hide them.
Each cell gets four indicators (metric values of the ``health`` family) and one verdict, ``ok``
or ``degenerate: <reasons>``, stamped on every record of the cell (the record field
``health``). A degenerate cell stays in the tables and the claims (a failed training is a real
outcome of a recipe); reports count it per model, and ``compare`` calls a newly degenerate
cell a regression.

The indicators (each a ratio, so one threshold serves every scenario):

- ``health_recon_vs_mean_image``: clean-test reconstruction MSE / the MSE of the mean training
  image (what a decoder that ignores its input does at best). A dead decoder is near 1;
  healthy models here are at 0.1-0.5. Degenerate at >= ``RECON_LIMIT``.
- ``health_sample_spread``: the per-pixel standard deviation across generated samples, averaged
  over pixels, / the same over the clean test images. Samples that are (nearly) all alike are
  near 0. Degenerate below ``SPREAD_LIMIT``.
- ``health_loss_drop``: the last epoch's training loss / the first epoch's (1 = the loss never
  moved). Degenerate above ``LOSS_LIMIT``.
- ``health_kl_per_image`` (models whose history has ``kl``: the VAEs): the last epoch's KL of the
  posterior to the prior. A posterior collapsed to the prior (KL below ``KL_LIMIT`` nats) with a
  poor reconstruction (recon ratio >= ``COLLAPSE_RECON``) is degenerate.

The thresholds were set from the failures seen (dead decoders, a degenerate NS-VAE seed) and
healthy runs of every built-in preset (``results/training-health``); the numbers of both are in
``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from bench.metrics.values import MetricValue, defined, undefined

RECON_LIMIT = 0.9
SPREAD_LIMIT = 0.15
LOSS_LIMIT = 0.99
KL_LIMIT = 1.0
COLLAPSE_RECON = 0.5
OK = "ok"
DEGENERATE = "degenerate"
INDICATORS = ("health_recon_vs_mean_image", "health_sample_spread", "health_loss_drop",
              "health_kl_per_image")


def health_values(recon_mse: float, train_images: torch.Tensor, clean_test: torch.Tensor,
                  samples: torch.Tensor, history: Sequence[Mapping]) -> list[MetricValue]:
    """The indicators of one cell (see the module docstring); one that cannot be computed is
    ``undefined`` with its reason."""
    mean_image = train_images.double().mean(0, keepdim=True)
    baseline = float((clean_test.double() - mean_image).pow(2).mean())
    values = [defined(INDICATORS[0], recon_mse / baseline) if baseline > 0
              else undefined(INDICATORS[0], "the clean test images are all the mean image")]
    real_spread = float(clean_test.double().std(0).mean())
    if not bool(torch.isfinite(samples).all()):
        values.append(undefined(INDICATORS[1], "the model's samples hold NaN/infinite values"))
    elif len(samples) < 2 or real_spread == 0:
        values.append(undefined(INDICATORS[1], "fewer than 2 samples or no spread in the data"))
    else:
        values.append(defined(INDICATORS[1], float(samples.double().std(0).mean()) / real_spread))
    losses = [float(h["loss"]) for h in history if isinstance(h.get("loss"), (int, float))]
    if len(losses) >= 2 and math.isfinite(losses[0]) and losses[0] > 0 and all(
            math.isfinite(v) for v in losses):
        values.append(defined(INDICATORS[2], losses[-1] / losses[0]))
    else:
        values.append(undefined(INDICATORS[2], "fewer than 2 epochs with a positive finite loss"))
    kl = history[-1].get("kl") if history else None
    if isinstance(kl, (int, float)) and math.isfinite(kl):
        values.append(defined(INDICATORS[3], float(kl)))
    return values


def health_verdict(values: Sequence[MetricValue]) -> str:
    """``ok`` or ``degenerate: <reason>; <reason>`` from the indicators."""
    by_name = {v.metric: v.value for v in values if v.ok}
    recon = by_name.get(INDICATORS[0], math.nan)
    reasons = []
    if recon >= RECON_LIMIT:
        reasons.append(f"reconstruction no better than the mean training image "
                       f"(MSE ratio {recon:.2f} >= {RECON_LIMIT})")
    spread = by_name.get(INDICATORS[1], math.nan)
    if spread < SPREAD_LIMIT:
        reasons.append(f"samples nearly all alike (spread {spread:.3f} of the data's "
                       f"< {SPREAD_LIMIT})")
    drop = by_name.get(INDICATORS[2], math.nan)
    if drop > LOSS_LIMIT:
        reasons.append(f"training loss did not fall (last/first epoch {drop:.3f} > {LOSS_LIMIT})")
    kl = by_name.get(INDICATORS[3], math.nan)
    if kl < KL_LIMIT and recon >= COLLAPSE_RECON:
        reasons.append(f"posterior collapsed to the prior (KL {kl:.2g} nats < {KL_LIMIT}, MSE "
                       f"ratio {recon:.2f})")
    return f"{DEGENERATE}: {'; '.join(reasons)}" if reasons else OK


def is_degenerate(health: object) -> bool:
    """Whether a record's ``health`` field marks a degenerate cell."""
    return isinstance(health, str) and health.startswith(DEGENERATE)
