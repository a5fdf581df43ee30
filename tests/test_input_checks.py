"""Every input of 'rvqvae-bench run' is checked before the first cell: one line, exit 2."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bench.grid.cell
from bench.cli import main
from bench.presets import load_preset_file
from bench.scenarios import SCENARIOS, load_scenario_file
from rvqvae.errors import UserError

ADHOC = ["run", "--scenario", "mnist+fmnist@0.2", "--model", "vqvae"]


@pytest.fixture
def no_cells(monkeypatch):
    """Fail the test if any cell would run."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a cell ran although the input is bad")

    monkeypatch.setattr(bench.grid.cell, "_fit_and_evaluate", forbidden)


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (["--n-samples", "0"], "n_samples must be >= 2 (FID/KID need at least 2 samples), got 0"),
    (["--n-samples", "1"], "n_samples must be >= 2"),
    (["--train-size", "0"], "train_size must be >= 1, got 0"),
    (["--train-size", "100000"], "needs 80000 inlier training images but mnist has 60000"),
    (["--seeds", "-1"], "seeds must be integers in [0, 2**32), got -1"),
    (["--seeds", "4294967296"], "seeds must be integers in [0, 2**32), got 4294967296"),
    (["--seeds", "1", "1"], "seeds repeat (1, 1)"),
    (["--device", "tpu"], "device 'tpu' is not supported; use cpu, cuda or cuda:N"),
    (["--device", "cuda:99"], "device 'cuda:99' needs a CUDA GPU number 99"),
])
def test_bad_command_line_values_fail_before_any_cell(real_data, tmp_path, capsys, no_cells,
                                                      extra, message):
    assert main([*ADHOC, *extra, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rvqvae-bench: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("body, message", [
    ('scenarios = ["mnist+fmnist@0.2"]\nmodels = ["vqvae"]\nseeds = 5\n',
     "seeds must be a list of int, got integer 5"),
    ('scenarios = ["mnist+fmnist@0.2"]\nmodels = "vqvae"\n',
     "models must be a list of model names or tables, got string 'vqvae'"),
    ('scenarios = ["mnist+fmnist@0.2"]\n[[models]]\nlabel = "x"\n',
     "models[0] has no name"),
    ('scenarios = ["mnist+fmnist@0.2"]\nmodels = ["vqvae"]\ntrain_size = true\n',
     "train_size must be int or none, got boolean True"),
    ('scenarios = ["mnist+fmnist@0.2"]\nmodels = ["vqvae"]\n[extra]\nx = 1\n',
     "unknown key(s) extra"),
    ('scenarios = ["mnist+fmnist@0.2"]\n[[models]]\nname = "vqvae"\noptions = {epochs = "3"}\n',
     "model 'vqvae' options: epochs must be int, got string '3'"),
    ('scenarios = ["mnist+fmnist@0.2"]\n[[models]]\nname = "vqvae"\noptions = {epoch = 3}\n',
     "model 'vqvae' has no option(s) epoch"),
    ('scenarios = ["mnist+fmnist@0.2"]\n[[models]]\nname = "vqvae"\n'
     'options = {recon_loss = "l1"}\n', "recon_loss='l1' is not supported"),
    ('models = ["vqvae"]\n', "missing key(s) scenarios"),
])
def test_bad_preset_files_are_one_line(real_data, tmp_path, capsys, no_cells, body, message):
    path = tmp_path / "mine.toml"
    path.write_text(body)
    assert main(["run", "--preset", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("body, message", [
    ('[scenario."a+b@0.1"]\ninlier = "mnist"\noutlier = "fmnist"\ninlier_classes = 3\n',
     "inlier_classes must be a list of int or none, got integer 3"),
    ('[scenario."a+b@0.1"]\ninlier = "mnist"\noutlier = "fmnist"\nepsilon = "0.1"\n',
     "epsilon must be float, got string '0.1'"),
    ('[scenario."a+b@0.1"]\ninlier = "mnist"\noutlier = "fmnist"\ntrain_size = true\n',
     "train_size must be int, got boolean True"),
    ('[scenarios."a+b@0.1"]\ninlier = "mnist"\noutlier = "fmnist"\n',
     "only [scenario.\"<name>\"] tables are allowed, found scenarios"),
    ('[scenario]\nx = 1\n', "scenario 'x' must be a table, got int"),
    ('[scenario."a+b@0.1"]\ninlier = "mnist"\n', "missing key(s) outlier"),
])
def test_bad_scenario_files_are_one_user_error(tmp_path, body, message):
    path = tmp_path / "scenarios.toml"
    path.write_text(body)
    with pytest.raises(UserError) as caught:
        load_scenario_file(path, register=False)
    assert message in str(caught.value)


def test_a_custom_scenario_file_can_be_run(real_data, tmp_path, capsys, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text('[scenario."digits17+fmnist@0.1"]\ninlier = "mnist"\ninlier_classes = [1, 7]\n'
                    'outlier = "fmnist"\nepsilon = 0.1\ntrain_size = 64\n')
    ran = []
    monkeypatch.setattr(bench.grid.cell, "_fit_and_evaluate", lambda preset, scenario, *a, **k: (
        ran.append((scenario.name, scenario.inlier_classes)) or [], {}))
    try:
        argv = ["run", "--scenario-file", str(path), "--scenario", "digits17+fmnist@0.1",
                "--model", "vqvae", "--n-samples", "8", "--out", str(tmp_path / "run")]
        assert main(argv) == 0
        assert ran == [("digits17+fmnist@0.1", (1, 7))]
        assert main(argv) == 0  # loading the same file again is harmless
    finally:
        SCENARIOS.unregister("digits17+fmnist@0.1")


# ------------------------------------------------------------------ property-based fuzzing

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)  # no lone surrogates
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
PRESET_KEYS = st.sampled_from(["name", "scenarios", "models", "seeds", "train_size", "test_size",
                               "clean_test_size", "n_samples", "extractors", "device",
                               "contamination_known", "bogus"])
SCENARIO_KEYS = st.sampled_from(["inlier", "outlier", "epsilon", "train_size", "inlier_classes",
                                 "outlier_classes", "test_size", "clean_test_size", "seed",
                                 "description", "bogus"])
FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _toml_value(value) -> str:
    """``value`` written as TOML (None has no TOML form: written as an empty table)."""
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value
                                                                  else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


@FUZZ
@given(st.dictionaries(PRESET_KEYS, VALUES, max_size=5))
def test_fuzzed_preset_files_give_a_preset_or_a_user_error(tmp_path, fields):
    base = {"scenarios": ["mnist+fmnist@0.2"], "models": ["vqvae"]}
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in {**base, **fields}.items())
    path = tmp_path / "fuzz.toml"
    path.write_text(body)
    try:
        preset = load_preset_file(path)
    except UserError:
        return
    from bench.presets.checks import check_preset

    try:
        check_preset(preset)
    except UserError:
        pass


@FUZZ
@given(st.dictionaries(SCENARIO_KEYS, VALUES, max_size=5))
def test_fuzzed_scenario_files_give_scenarios_or_a_user_error(real_data, tmp_path, fields):
    table = {"inlier": "mnist", "outlier": "fmnist", **fields}
    body = '[scenario."fuzz@0.1"]\n' + "".join(f"{k} = {_toml_value(v)}\n"
                                               for k, v in table.items())
    path = tmp_path / "fuzz.toml"
    path.write_text(body)
    try:
        load_scenario_file(path, register=False)
    except UserError:
        pass


# ------------------------------------------- sizes and numbers nobody named yet (issue #22)

@pytest.mark.parametrize("how", ["toml", "command line"])
def test_an_absurd_sample_count_is_refused_before_the_run_folder(real_data, tmp_path, capsys,
                                                                 no_cells, how):
    """``n_samples = 1000000000`` trained, then evaluated with no end, leaving run.json and
    .lock behind."""
    path = tmp_path / "huge.toml"
    path.write_text('scenarios = ["mnist+fmnist@0.2"]\nmodels = ["vqvae"]\n'
                    'n_samples = 1000000000\n')
    argv = (["run", "--preset", str(path)] if how == "toml"
            else [*ADHOC, "--n-samples", "1000000000"])
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    name = "huge" if how == "toml" else "adhoc"
    assert err == (f"rvqvae-bench: error: preset '{name}': n_samples must be <= 100000, got "
                   f"1000000000: a cell holds its samples in memory at once (3.14e+03 GB of "
                   f"float32 images here), and FID's customary 50000 samples fit the bound\n")
    assert not (tmp_path / "run").exists()


class Reached(Exception):
    """The command got past every check to where work starts (the test stops it there)."""


def _stop(*args, **kwargs):
    raise Reached


#: an option's value as typed: any size of integer, any float (inf, nan), or not a number
TYPED_NUMBERS = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.integers(-3, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e309", "9" * 40, "0x10", "", "two"]))
RUN_OPTIONS = ("--epochs", "--n-samples", "--train-size", "--seeds", "--cpus-per-cell",
               "--gpus-per-cell", "--max-retries")
NUMBER_FUZZ = settings(max_examples=30, deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


@NUMBER_FUZZ
@given(option=st.sampled_from(RUN_OPTIONS), text=TYPED_NUMBERS)
def test_fuzzed_run_numbers_are_refused_in_one_line_before_anything_runs(
        real_data, tmp_path, capsys, monkeypatch, option, text):
    """Every numeric option of ``run``, with huge values, inf and nan: argparse's usage error,
    or one ``rvqvae-bench: error:`` line, or (a value within its bounds) the run goes ahead;
    the run folder is never created before that. Ray options go to a fake 2-CPU cluster."""
    import types

    import bench.grid.on_ray
    import bench.grid.runner

    cluster = types.SimpleNamespace(is_initialized=lambda: True,
                                    cluster_resources=lambda: {"CPU": 2.0})
    monkeypatch.setattr(bench.grid.on_ray, "import_ray", lambda: cluster)
    monkeypatch.setattr(bench.grid.runner, "run_lock", _stop)
    ray = ["--executor", "ray"] if option in RUN_OPTIONS[4:] else []
    out = tmp_path / "run"
    try:
        status = main([*ADHOC, *ray, f"{option}={text}", "--out", str(out)])
    except SystemExit as exit_:  # argparse: not a number of the option's type
        assert exit_.code == 2 and "invalid" in capsys.readouterr().err
    except Reached:
        value = float(text)
        least = 0 if option in ("--seeds", "--gpus-per-cell", "--max-retries") else 1
        assert value == int(value) >= least
        bound = {"--epochs": 10_000, "--n-samples": 100_000, "--train-size": 60_000 / 0.8,
                 "--seeds": 2**32 - 1, "--cpus-per-cell": 2, "--gpus-per-cell": 0,
                 "--max-retries": 100}[option]
        assert value <= bound
    else:
        err = capsys.readouterr().err
        assert status == 2 and err.startswith("rvqvae-bench: error: ") and err.count("\n") == 1
    assert not out.exists()
