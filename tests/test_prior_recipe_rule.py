"""The cheaper prior's equivalence rule (bench.studies.prior_recipe_rule) on hand-made records."""

from __future__ import annotations

from bench.records import make_record, records_frame
from bench.studies.prior_recipe_rule import decide, gate, pooled_claims

SCENARIOS = ("mnist+fmnist@0.2", "mnist+uniform@0.4")
NOISE = (-1.0, 0.5, 0.0, 1.0, -0.5, 0.25)  # per seed, in units of the metric's spread


def _records(fid_scale: float = 1.0, seed_shift: int = 0):
    """vqvae's FID (~100, spread 5) and outlier-mode rate (~0.2, spread 0.02) on two scenarios
    and 6 seeds; ``seed_shift`` rotates the per-seed noise (another draw of the same recipe)."""
    rows = []
    for scenario in SCENARIOS:
        for seed in range(6):
            noise = NOISE[(seed + seed_shift) % 6]
            for metric, mean, spread in (("fid_domain_500", 100.0, 5.0),
                                         ("outlier_mode_rate_500", 0.2, 0.02)):
                value = (mean + noise * spread) * (fid_scale if metric.startswith("fid") else 1)
                rows.append(make_record(scenario=scenario, model="vqvae", seed=seed,
                                        metric=metric, value=value, status="ok",
                                        protocol={"n_samples": 500},
                                        cell_id=f"{scenario}__vqvae__s{seed}"))
    return records_frame(rows)


def test_the_same_recipe_drawn_again_is_equivalent():
    baseline, candidate = _records(), _records(seed_shift=1)
    summary = pooled_claims(baseline, candidate)
    assert set(summary["model"]) == {"vqvae+fast-prior"}
    assert set(summary["verdict"]) == {"no difference shown"}
    assert decide(gate(baseline, candidate), summary) == (
        True, "no gate regression, no primary metric worse")


def test_a_worse_fid_is_not_equivalent_and_says_where():
    baseline, candidate = _records(), _records(fid_scale=1.5)
    equivalent, reason = decide(gate(baseline, candidate), pooled_claims(baseline, candidate))
    assert not equivalent
    assert "gate: vqvae fid_domain_500 on mnist+fmnist@0.2 regressed" in reason
    assert "claims: vqvae+fast-prior worse on fid_domain_500" in reason
    assert "outlier_mode" not in reason
