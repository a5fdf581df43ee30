"""Named grids of scenario x model x seed: ``smoke``, ``ci``, ``quick``, ``paper``, ``nsvae-paper``.

A preset is a frozen :class:`Preset`; the built-in ones live in :mod:`bench.presets.builtin`.
Users add their own without editing the package, either in Python
(``PRESETS.register("mine", Preset(...))``) or as a TOML file passed to
``rvqvae-bench run --preset path/to/mine.toml`` (same field names as :class:`Preset`; models as
``[[models]]`` tables with ``name``, optional ``label`` and ``options``).
"""

from __future__ import annotations

from bench.presets import builtin  # noqa: F401  (registers the built-in presets on import)
from bench.presets.spec import PRESETS, ModelSpec, Preset, get_preset, load_preset_file

__all__ = ["PRESETS", "ModelSpec", "Preset", "get_preset", "load_preset_file"]
