import pytest

from bench.cell import Cell
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
