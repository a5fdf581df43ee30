import json

import pytest

from rvqvae.errors import UserError
from rvqvae.registry import Registry


class Base:
    """base"""


def test_register_get_and_describe():
    registry = Registry("widget", base=Base)

    @registry.register("fancy-widget", colour="blue")
    class Fancy(Base):
        """A fancy widget.

        More text."""

    assert registry.get("fancy-widget") is Fancy
    entry = registry.entry("fancy-widget")
    assert entry.description == "A fancy widget."
    assert entry.info == {"colour": "blue"}
    assert registry.names() == ["fancy-widget"] and "fancy-widget" in registry


def test_unknown_name_lists_known_ones():
    registry = Registry("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    with pytest.raises(UserError, match=r"^widget 'c' is unknown; known: a, b$"):
        registry.get("c")


@pytest.mark.parametrize("name", ["", "Upper", "-lead", "has space", "a/b", None])
def test_malformed_names_are_refused(name):
    with pytest.raises(ValueError, match="malformed"):
        Registry("widget").register(name, 1)


def test_duplicates_refused_unless_replace():
    registry = Registry("widget")
    registry.register("x", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", 2)
    registry.register("x", 3, replace=True)
    assert registry.get("x") == 3


def test_base_class_is_enforced():
    registry = Registry("widget", base=Base)
    with pytest.raises(TypeError, match="must derive from Base"):
        registry.register("bad", int)


# -- where each entry is defined, and `rvqvae-bench list` -------------------------------------
def test_every_entry_records_the_file_that_defines_it():
    from bench.commands.list import KINDS, ROOT, registry_rows

    files = {kind: {row["name"]: row["file"] for row in registry_rows(kind)} for kind in KINDS}
    assert files["models"]["oracle-vqvae"] == "rvqvae/models/oracle.py"
    assert files["models"]["vae"] == "rvqvae/models/vae.py"
    assert files["presets"]["ci"] == "bench/presets/builtin.py"
    assert files["scenario-families"]["mnist+fmnist"] == "bench/scenarios/registry.py"
    assert files["metric-groups"]["perplexity"] == "bench/metrics/perplexity.py"
    assert files["quantizer-backends"]["chunked"] == "rvqvae/quantize/chunked.py"
    assert files["quantizer-backends"]["fused"] == "rvqvae/quantize/fused_cpu.py"
    assert files["kernel-grids"]["ci"] == "bench/kernels/grid.py"
    assert files["feature-extractors"]["inception"] == "bench/metrics/extractors.py"
    assert files["datasets"]["mnist"] == "bench/data/datasets.py"
    for kind, entries in files.items():  # every file exists in the checkout
        assert entries and all((ROOT / f).is_file() for f in entries.values()), kind


def test_a_registration_from_a_helper_or_a_file_names_its_caller_or_the_file(tmp_path):
    registry = Registry("thing")

    def register_twice(name):  # a register_* helper is skipped: the caller is the source
        registry.register(name, object())

    register_twice("a")
    registry.register("b", object(), source=str(tmp_path / "things.toml"))
    assert registry.entry("a").source == __name__
    assert registry.entry("b").source.endswith("things.toml")


def test_list_command_prints_every_registry_or_one_error_line(capsys):
    from bench.cli import main

    assert main(["list", "models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert {"name": "vqvae", "origin": "built-in",
            "file": "rvqvae/models/vqvae.py"}.items() <= rows[-1].items()
    assert main(["list", "kernel-grids"]) == 0
    assert capsys.readouterr().out.startswith("kernel-grids (3)\n  ci ")
    assert main(["list", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rvqvae-bench: error: registry 'nope' is unknown; known: models, presets, "
        "scenario-families, scenarios, metric-groups, metric-families, quantizer-backends, "
        "kernel-grids, feature-extractors, datasets, executors")
