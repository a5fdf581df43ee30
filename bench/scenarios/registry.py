"""The scenario registry: named scenarios, families of them over epsilon, and TOML files.

Named scenarios live in :data:`SCENARIOS` (``rvqvae-bench scenarios`` lists them):
``mnist+fmnist@eps``, ``fmnist+mnist@eps``, ``mnistK+rest@eps`` (digit K vs the other digits,
K = 0..9), ``mnist+uniform@eps`` and ``mnist+gaussian@eps`` for eps in :data:`EPSILONS`; any
other eps of a family works too (``get_scenario("mnist+fmnist@0.15")``). Default train size is
10,000, 5,000 for the one-vs-rest families (a single digit has only 5,421 to 6,742 training
images); presets change it with ``scenario.with_(train_size=...)``. Register your own with
:func:`register_scenario` or a TOML file (:func:`load_scenario_file`).
"""

from __future__ import annotations

import dataclasses
import os

from bench.scenarios.spec import CLASSES, Scenario, format_epsilon
from rvqvae.errors import UserError
from rvqvae.fields import build
from rvqvae.registry import Registry

EPSILONS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)

SCENARIOS: Registry[Scenario] = Registry("scenario")
FAMILIES: Registry[Scenario] = Registry("scenario family")  # name without "@eps" -> at eps 0


def register_scenario(
    scenario: Scenario, *, description: str = "", replace: bool = False, source: str = ""
) -> Scenario:
    """Register ``scenario`` under ``scenario.name`` (for ``get_scenario`` and the CLI)."""
    try:
        SCENARIOS.register(scenario.name, scenario, description=description, replace=replace,
                           source=source)
    except ValueError as error:
        raise UserError(str(error)) from None
    return scenario


def get_scenario(name: str) -> Scenario:
    """The registered scenario ``name``, or a family at any epsilon (``mnist+fmnist@0.15``)."""
    if name in SCENARIOS:
        return SCENARIOS.get(name)
    family, _, epsilon = name.rpartition("@")
    if family in FAMILIES:
        try:
            value = float(epsilon)
        except ValueError:
            raise UserError(
                f"scenario {name!r}: {epsilon!r} is not a number (want e.g. {family}@0.2)"
            ) from None
        return FAMILIES.get(family).with_(name=f"{family}@{format_epsilon(value)}",
                                          epsilon=value)
    custom = [n for n in SCENARIOS.names() if n.rpartition("@")[0] not in FAMILIES]
    raise UserError(
        f"scenario {name!r} is unknown; known families (add @epsilon, e.g. mnist+fmnist@0.2): "
        f"{', '.join(FAMILIES.names())}; custom: {', '.join(custom) or '(none)'}"
    )


def register_family(template: Scenario, *, description: str = "", epsilons=EPSILONS) -> None:
    """Register ``template`` as ``<template.name>@eps`` for each eps in ``epsilons``;
    ``get_scenario`` then also builds the family at any other eps."""
    family = template.name
    FAMILIES.register(family, template, description=description)
    for epsilon in epsilons:
        name = f"{family}@{format_epsilon(epsilon)}"
        register_scenario(template.with_(name=name, epsilon=epsilon), description=description)


def load_scenario_file(path: str | os.PathLike, *, register: bool = True) -> list[Scenario]:
    """Scenarios from a TOML file, one table per scenario, registered unless ``register=False``.

    Example (keys are the :class:`Scenario` fields, plus an optional ``description``)::

        [scenario."mnist17+fmnist@0.1"]
        inlier = "mnist"
        inlier_classes = [1, 7]
        outlier = "fmnist"
        epsilon = 0.1
        description = "digits 1 and 7 contaminated by clothing"

    Guarantees: any content gives scenarios or one :class:`UserError` (unknown tables or keys,
    values of the wrong type, inconsistent specs), never another exception. Loading the same
    file twice is harmless: a name already registered with an equal spec is kept; with a
    different spec it is an error.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read scenario file {path}: {error}") from None
    extra = sorted(set(document) - {"scenario"})
    tables = document.get("scenario", {})
    if extra or not isinstance(tables, dict):
        raise UserError(f"{path}: only [scenario.\"<name>\"] tables are allowed, found "
                        f"{', '.join(extra) or type(tables).__name__}")
    scenarios = []
    for name, table in tables.items():
        where = f"{path}: scenario {name!r}"
        if not isinstance(table, dict):
            raise UserError(f"{where} must be a table, got {type(table).__name__}")
        table = dict(table)
        description = table.pop("description", "")
        if not isinstance(description, str):
            raise UserError(f"{where}: description must be a string")
        known = {f.name for f in dataclasses.fields(Scenario)} - {"name"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise UserError(f"{path}: scenario {name!r} has unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known | {'description'}))}")
        scenario = build(Scenario, {"name": name, **table}, where=where)
        if register:
            if name in SCENARIOS and SCENARIOS.get(name) == scenario:
                scenarios.append(scenario)
                continue
            register_scenario(scenario, description=description, source=str(path))
        scenarios.append(scenario)
    return scenarios


# ---------------------------------------------------------------------- the named scenarios

register_family(
    Scenario("mnist+fmnist", "mnist", "fmnist"),
    description="MNIST digits contaminated by Fashion-MNIST clothing",
)
register_family(
    Scenario("fmnist+mnist", "fmnist", "mnist"),
    description="Fashion-MNIST clothing contaminated by MNIST digits",
)
for _k in range(10):  # one digit has 5421 to 6742 training images: train size 5000
    register_family(
        Scenario(f"mnist{_k}+rest", "mnist", CLASSES, inlier_classes=(_k,), train_size=5000),
        description=f"MNIST digit {_k} contaminated by the other digits (one vs rest)",
    )
register_family(
    Scenario("mnist+uniform", "mnist", "uniform-noise"),
    description="MNIST contaminated by uniform pixel noise",
)
register_family(
    Scenario("mnist+gaussian", "mnist", "gaussian-noise"),
    description="MNIST contaminated by Gaussian pixel noise N(0.5, 0.25^2), clipped",
)
# Structures first used by the robust-heldout preset (fixed before any of its cells ran)
register_family(
    Scenario("fmnist+uniform", "fmnist", "uniform-noise"),
    description="Fashion-MNIST contaminated by uniform pixel noise",
)
register_family(
    Scenario("fmnist+gaussian", "fmnist", "gaussian-noise"),
    description="Fashion-MNIST contaminated by Gaussian pixel noise N(0.5, 0.25^2), clipped",
)
register_family(
    Scenario("mnist+shoes", "mnist", "fmnist", outlier_classes=(5, 7, 9)),
    description="MNIST contaminated by Fashion-MNIST footwear only (sandal, sneaker, boot)",
)
register_family(
    Scenario("fmnisttops+trousers", "fmnist", CLASSES, inlier_classes=(0, 2, 4, 6),
             outlier_classes=(1,), train_size=5000),
    description="Fashion-MNIST upper-body garments (T-shirt, pullover, coat, shirt) "
                "contaminated by trousers: one tight outlier class",
)
