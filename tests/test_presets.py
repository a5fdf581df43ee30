import pytest

from bench.grid.cell import Cell
from bench.presets import get_preset
from rvqvae.errors import UserError


def test_quick_preset_matches_the_issue():
    preset = get_preset("quick")
    assert preset.scenarios == ("mnist+fmnist@0", "mnist+fmnist@0.2", "mnist+fmnist@0.4")
    assert {m.name for m in preset.models} == {
        "vqvae", "rvqvae", "trimmed-vqvae", "nsvae", "oracle-vqvae"}
    assert preset.seeds == (0,) and preset.extractors == ("domain",)
    assert len(preset.cells()) == 15


def test_toml_preset_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('scenarios = ["mnist+fmnist@0.1"]\nseeds = [3, 4]\ntrain_size = 200\n'
                    '[[models]]\nname = "vqvae"\nlabel = "vq-small"\noptions = {epochs = 1}\n')
    preset = get_preset(str(path))
    assert preset.name == "mine" and preset.seeds == (3, 4) and preset.train_size == 200
    assert preset.models[0].display == "vq-small" and preset.models[0].options == {"epochs": 1}
    scenario, seed, model = preset.cells()[1]
    assert Cell(scenario, model, seed).id == "mnist+fmnist@0.1__vq-small__s4"


def test_toml_preset_unknown_key_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('scenarios = ["x"]\nmodels = ["vqvae"]\nepochz = 3\n')
    with pytest.raises(UserError, match="unknown key\\(s\\) epochz"):
        get_preset(str(path))


def test_the_orientation_rule_picks_the_best_worst_cell_then_the_lower_mode_rate():
    """The rule stated before the rvqvae-orientation run, on synthetic records."""
    import pandas as pd

    from bench.studies.orientation_rule import decide, rule_table

    def records(split_by_rule, mode_by_rule):
        rows = []
        for rule, per_scenario in split_by_rule.items():
            for scenario, values in per_scenario.items():
                for seed, value in enumerate(values):
                    rows += [{"model": f"rvq-{rule}", "scenario": scenario, "seed": seed,
                              "status": "ok", "metric": metric, "value": v}
                             for metric, v in (("auroc_transductive_split", value),
                                               ("outlier_mode_rate_500", mode_by_rule[rule]))]
        return pd.DataFrame(rows)

    split = {"spread": {"a": [0.9, 0.95], "b": [0.1, 0.2]},   # inverts on b: worst 0.15
             "recon": {"a": [0.85, 0.85], "b": [0.8, 0.84]},  # worst 0.82
             "mass": {"a": [0.9, 0.9], "b": [0.81, 0.83]}}    # worst 0.82: tie with recon
    table = rule_table(records(split, {"spread": 0.1, "recon": 0.2, "mass": 0.15}))
    assert table["rule"].tolist()[-1] == "spread"
    assert table.set_index("rule").loc["recon", "b"] == "0.82 (0.80)"
    assert decide(table) == "mass"  # tied on the worst cell, lower outlier-mode rate
    table = rule_table(records(split, {"spread": 0.1, "recon": 0.2, "mass": 0.2}))
    assert decide(table) in ("recon", "mass")  # equal on both: the first of the finalists
    split["spread"]["b"] = [0.81, 0.83]
    table = rule_table(records(split, {"spread": 0.2, "recon": 0.2, "mass": 0.2}))
    assert decide(table) == "spread"  # every tie-break equal: the current default
