"""Plugins: modules outside the package that register models, metric groups (with their catalog
entries), scenarios, kernel backends, feature extractors or datasets.

Two ways in, both loaded by every ``rvqvae-bench`` command before it reads a registry:

- an installed package declares an entry point in the group ``rvqvae_bench.plugins``
  (``[project.entry-points."rvqvae_bench.plugins"] name = "package.module"``);
- ``--plugin MODULE_OR_FILE`` names an importable module or a ``.py`` file.

A plugin that fails to import is one :class:`UserError` naming it, before anything runs. The
loaded plugins (name, version, and the file of a file plugin) go into the provenance of every
record; :func:`install` loads the same plugins on a Ray worker, a file plugin from its source
text (no shared filesystem needed). ``rvqvae-bench list`` shows which plugin defined an entry.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rvqvae.errors import UserError

ENTRY_POINT_GROUP = "rvqvae_bench.plugins"
BUILT_IN = ("rvqvae", "bench")  # top-level packages whose entries are built in


@dataclass(frozen=True)
class Plugin:
    """One loaded plugin. ``code`` (a file plugin's source) lets a worker load it too."""

    name: str  # the module name, the file's stem, or the entry point's name
    version: str  # the distribution's version, the module's __version__, or the file's hash
    module: str  # the imported module's name
    file: str = ""  # a file plugin's path as given
    code: str = ""

    def provenance(self) -> dict[str, str]:
        fields = {"name": self.name, "version": self.version}
        return {**fields, "file": self.file} if self.file else fields


_LOADED: dict[str, Plugin] = {}  # by name, in load order


def load_plugins(names: list[str] | tuple[str, ...] = (), *, entry_points: bool = True
                 ) -> list[Plugin]:
    """Import every entry-point plugin (unless ``entry_points`` is false) and each of ``names``
    (a module name or a ``.py`` file); a plugin already loaded is not imported again."""
    if entry_points:
        for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if point.name not in _LOADED:
                _load_entry_point(point)
    return [_load_named(name) for name in names]


def loaded_plugins() -> list[Plugin]:
    return list(_LOADED.values())


def install(plugins: list[Plugin] | tuple[Plugin, ...]) -> None:
    """Load the driver's ``plugins`` in this process (a Ray worker): modules by name, file
    plugins from their source text under the same module name."""
    for plugin in plugins:
        if plugin.name in _LOADED:
            continue
        if plugin.code:
            _import(plugin.name, lambda p=plugin: _module_from_code(p.module, p.file, p.code))
        else:
            _import(plugin.name, lambda p=plugin: importlib.import_module(p.module))
        _LOADED[plugin.name] = plugin


def plugin_of(module: str) -> Plugin | None:
    """The loaded plugin whose module is ``module`` or a parent package of it."""
    for plugin in _LOADED.values():
        if module == plugin.module or module.startswith(plugin.module + "."):
            return plugin
    return None


def origin(source: str) -> str:
    """Where a registry entry came from: ``built-in``, ``plugin NAME`` or ``user code``."""
    if source.split(".")[0] in BUILT_IN:
        return "built-in"
    plugin = plugin_of(source)
    if plugin is not None:
        return f"plugin {plugin.name}"
    return "file" if source.endswith(".toml") else "user code"


def _load_entry_point(point: metadata.EntryPoint) -> None:
    dist = point.dist.name if point.dist is not None else "an installed package"
    version = point.dist.version if point.dist is not None else "unknown"
    loaded = _import(point.name, point.load,
                     hint=f"it is installed by {dist}: fix or uninstall that package")
    module = loaded.__name__ if isinstance(loaded, types.ModuleType) else point.module
    if callable(loaded) and not isinstance(loaded, types.ModuleType):
        _import(point.name, loaded, hint=f"its entry point {point.value!r} raised")
    _LOADED[point.name] = Plugin(point.name, version, module)


def _load_named(name: str) -> Plugin:
    if name.endswith(".py") or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"--plugin {name}: no such file; give a .py file or an importable "
                            f"module name")
        plugin_name = path.stem
        if plugin_name in _LOADED:
            return _LOADED[plugin_name]
        code = path.read_text()
        module = "rvqvae_bench_plugin_" + re.sub(r"\W", "_", plugin_name)
        _import(name, lambda: _module_from_code(module, name, code))
        version = "sha256:" + hashlib.sha256(code.encode()).hexdigest()[:12]
        plugin = Plugin(plugin_name, version, module, file=name, code=code)
    else:
        if name in _LOADED:
            return _LOADED[name]
        if importlib.util.find_spec(name.split(".")[0]) is None:
            raise UserError(f"--plugin {name}: no module of that name is importable; give a "
                            f".py file, install the package, or add its folder to PYTHONPATH")
        loaded = _import(name, lambda: importlib.import_module(name))
        plugin = Plugin(name, _module_version(loaded), name)
    _LOADED[plugin.name] = plugin
    return plugin


def _import(name: str, load, *, hint: str = ""):
    """``load()``, any exception turned into one :class:`UserError` naming plugin ``name``."""
    try:
        return load()
    except UserError as error:
        raise UserError(f"plugin {name}: {error}") from error
    except Exception as error:  # a broken plugin of any kind: one line, not a traceback
        where = hint or f"fix it or leave out --plugin {name}"
        first = (str(error).strip().splitlines() or [""])[0]
        raise UserError(f"plugin {name} failed to import: {type(error).__name__}: {first} "
                        f"({where})") from error


def _module_from_code(module: str, file: str, code: str) -> types.ModuleType:
    """Execute ``code`` as module ``module`` (registered in ``sys.modules`` first, so its
    classes pickle by reference and its registrations name it as their source)."""
    spec = importlib.util.spec_from_loader(module, loader=None, origin=file)
    target = importlib.util.module_from_spec(spec)
    target.__file__ = file
    sys.modules[module] = target
    try:
        exec(compile(code, file, "exec"), target.__dict__)
    except BaseException:
        del sys.modules[module]
        raise
    return target


def _module_version(module: types.ModuleType) -> str:
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    top = module.__name__.split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"
