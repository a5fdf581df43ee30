"""The preset data model, its registry and the TOML loader."""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rvqvae.errors import UserError
from rvqvae.fields import build, describe
from rvqvae.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """A registered model with option overrides, shown in tables as ``label``; on the command
    line written ``name:field=value:...`` (:meth:`parse`, ``str``)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def display(self) -> str:
        return self.label or self.name

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``nsvae:decoder_channels=(32,32):negatives=noise`` -> name and options (values are
        Python literals, or bare words as strings)."""
        name, *assignments = text.split(":")
        options = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep or not key:
                raise UserError(
                    f"model spec {text!r}: {assignment!r} is not FIELD=VALUE "
                    f"(e.g. nsvae:decoder_channels=(32,32):lr=0.001)"
                )
            try:
                options[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                options[key] = value  # a bare word: a string option such as negatives=noise
        return cls(name, options)

    def __str__(self) -> str:
        return ":".join([self.name, *(f"{k}={v if isinstance(v, str) else repr(v)}"
                                      .replace(" ", "") for k, v in self.options.items())])


@dataclass(frozen=True)
class Preset:
    """A grid: every scenario x every model x every seed, and how to evaluate each cell.

    ``train_size``, ``test_size`` (per side of the mixed test split) and ``clean_test_size``
    (the FID reference and reconstruction set) override the scenarios' own sizes when set.
    ``n_samples`` generated images per cell feed FID/KID and the outlier-mode rate, with
    each feature extractor in ``extractors``. ``contamination_known`` passes the
    scenario's epsilon to robust models as their epsilon-hat (otherwise they estimate it).
    ``metrics`` names the metric groups to compute (empty: every registered group); the
    ``health`` group always runs, so that every record carries its cell's health.
    """

    name: str
    description: str
    scenarios: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    seeds: tuple[int, ...] = (0,)
    train_size: int | None = None
    test_size: int | None = None
    clean_test_size: int | None = None
    n_samples: int = 1000
    extractors: tuple[str, ...] = ("domain",)
    contamination_known: bool = True
    device: str = "cpu"
    metrics: tuple[str, ...] = ()  # metric groups to compute; () = all (health always runs)

    @property
    def device_type(self) -> str:
        """``cpu`` or ``cuda`` (``cuda:1`` is of type ``cuda``), as ``torch.device`` parses it."""
        return self.device.partition(":")[0]

    def cells(self) -> list[tuple[str, int, ModelSpec]]:
        """(scenario, seed, model) in run order: one scenario build serves all its models."""
        return [(s, seed, m) for s in self.scenarios for seed in self.seeds for m in self.models]


PRESETS: Registry[Preset] = Registry("preset")


def get_preset(name_or_path: str) -> Preset:
    """A registered preset by name, or a preset read from a ``.toml`` file path."""
    if name_or_path.endswith(".toml"):
        return load_preset_file(name_or_path)
    return PRESETS.get(name_or_path)


def load_preset_file(path: str | Path) -> Preset:
    """Read a preset from TOML; any unknown key or wrongly typed value is one clear error.

    Models are names (``models = ["vqvae"]``) or tables with ``name`` and optional ``label``
    and ``options`` (``[[models]]``). Guarantee: any content gives a :class:`Preset` or a
    :class:`UserError`, never another exception.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"preset file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"preset file {path} is not valid TOML: {error}") from None
    where = f"preset file {path}"
    raw.setdefault("name", path.stem)
    raw.setdefault("description", f"preset from {path.name}")
    models = raw.get("models", [])
    if "models" in raw:
        if not isinstance(models, list):
            raise UserError(f"{where}: models must be a list of model names or tables, "
                            f"got {describe(models)}")
        raw["models"] = tuple(_model_spec(entry, f"{where}: models[{i}]")
                              for i, entry in enumerate(models))
    return build(Preset, raw, where=where)


def _model_spec(entry: Any, where: str) -> ModelSpec:
    if isinstance(entry, str):
        entry = {"name": entry}
    if isinstance(entry, dict) and "name" not in entry:
        raise UserError(f"{where} has no name (want e.g. {{name = \"vqvae\"}})")
    return build(ModelSpec, entry, where=where)


def sized_scenario(preset: Preset, name: str):
    """The scenario ``name`` with the preset's size overrides (checked against the data)."""
    from bench.scenarios import get_scenario

    scenario = get_scenario(name)
    sizes = ("train_size", "test_size", "clean_test_size")
    changes = {k: getattr(preset, k) for k in sizes if getattr(preset, k) is not None}
    return scenario.with_(**changes) if changes else scenario
