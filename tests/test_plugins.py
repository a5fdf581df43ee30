"""Plugins (:mod:`bench.plugins`): the example plugin (a model, a metric group, a backend, an
extractor, a dataset, a scenario, a preset) run from the command line under the local and the
Ray executor with identical records; loaded from a file, a module and an entry point; its name
and version in every record; `list` says where each entry came from; a broken plugin is one
error line before anything runs.

The runs happen in fresh interpreters: a plugin's registrations (its metric group especially)
must not leak into the registries the other tests' cells use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.metrics.catalog import is_timing

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin" / "rvqvae_bench_example.py"
UNTIMED = ("wall_s", "timestamp")


def _cli(*argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [(env or {}).get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


def _records(run_dir: Path) -> dict[str, list[dict]]:
    return {path.name: [{k: v for k, v in row.items() if k not in UNTIMED}
                        for row in json.loads(path.read_text()) if not is_timing(row["metric"])]
            for path in sorted((run_dir / "cells").glob("*.json"))}


def test_a_file_plugin_runs_from_the_cli_under_both_executors_with_identical_records(
        real_data, tmp_path):
    if not os.environ.get("CI"):
        pytest.importorskip("ray")
    shutil.copy(EXAMPLE, tmp_path / "my_plugin.py")
    local = _cli("run", "--plugin", "my_plugin.py", "--preset", "example", "--seeds", "0", "1",
                 "--out", "local", "--quiet", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    on_ray = _cli("run", "--plugin", "my_plugin.py", "--preset", "example", "--seeds", "0", "1",
                  "--out", "ray", "--quiet", "--executor", "ray", cwd=tmp_path)
    assert on_ray.returncode == 0, on_ray.stderr[-2000:]
    local_records, ray_records = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert len(local_records) == 2 and ray_records == local_records
    rows = [row for rows in local_records.values() for row in rows]
    metrics = {row["metric"] for row in rows}
    assert "sample_mean_32" in metrics and "health_recon_vs_mean_image" in metrics
    assert {row["model"] for row in rows} == {"vqvae-first-half"}
    assert {row["outlier"] for row in rows} == {"mnist-inverted"}  # the plugin's dataset
    version = "sha256:" + __import__("hashlib").sha256(EXAMPLE.read_bytes()).hexdigest()[:12]
    assert {row["plugins"] for row in rows} == {json.dumps(
        [{"file": "my_plugin.py", "name": "my_plugin", "version": version}])}
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["plugins"] == [{"name": "my_plugin", "version": version, "file": "my_plugin.py"}]


def test_an_installed_entry_point_is_loaded_by_every_command_with_its_version(tmp_path):
    """A package that declares the entry point (here a dist-info folder on the path, what pip
    writes) is loaded without --plugin; `list` names it as each entry's origin."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / "rvqvae_bench_example.py")
    dist = site / "rvqvae_bench_example-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rvqvae-bench-example\n"
                                   "Version: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rvqvae_bench.plugins]\nexample = rvqvae_bench_example\n")
    done = _cli("list", "models", "datasets", "quantizer-backends", "feature-extractors",
                "metric-groups", "--json", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr[-2000:]
    listing = json.loads(done.stdout)
    origins = {(kind, row["name"]): row["origin"] for kind, rows in listing.items()
               for row in rows}
    for kind, name in (("models", "vqvae-first-half"), ("datasets", "mnist-inverted"),
                       ("quantizer-backends", "loop"), ("feature-extractors", "domain-logits"),
                       ("metric-groups", "sample_mean")):
        assert origins[kind, name] == "plugin example", (kind, name)
    assert origins["models", "vqvae"] == "built-in"
    done = _cli("run", "--preset", "example", "--out", "run", "--quiet", cwd=tmp_path,
                env={"PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["plugins"] == [{"name": "example", "version": "0.1.0"}]


def test_the_example_extractor_and_dataset_work_in_python(tmp_path, real_data):
    """The two registrations the CLI test does not compute with: FID on the domain
    classifier's logits, and the inverted dataset's pixels."""
    script = f"""
import torch
from bench.plugins import load_plugins
load_plugins([{str(EXAMPLE)!r}])
from bench.data.datasets import load_dataset
from bench.metrics.domain import domain_classifier
from bench.metrics.fid import generation_metrics_with_protocol as fid

plain, inverted = load_dataset("mnist", "test"), load_dataset("mnist-inverted", "test")
assert torch.equal(inverted.images, 255 - plain.images)
classifier = domain_classifier(("mnist", "fmnist"))
real = plain.images[:200]
same, protocol = fid(real[:100], real[100:], extractor="domain-logits", domain=classifier,
                     cache=False)
other, _ = fid(inverted.images[:100], real[100:], extractor="domain-logits", domain=classifier,
               cache=False)
assert protocol["extractor"] == "domain-logits", protocol
assert other["fid_domain-logits_100"] > 10 * same["fid_domain-logits_100"], (same, other)
print("ok", same, other)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]


@pytest.mark.parametrize("source, message", [
    ("import no_such_package_xyz\n",
     "plugin broken.py failed to import: ModuleNotFoundError: No module named "
     "'no_such_package_xyz' (fix it or leave out --plugin broken.py)"),
    ("raise RuntimeError('needs a GPU')\n",
     "plugin broken.py failed to import: RuntimeError: needs a GPU (fix it or leave out "
     "--plugin broken.py)"),
])
def test_a_broken_plugin_is_one_error_line_and_nothing_is_written(tmp_path, capsys, source,
                                                                   message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(source)
    assert main(["run", "--plugin", "broken.py", "--preset", "smoke", "--out", "out"]) == 2
    assert capsys.readouterr().err == f"rvqvae-bench: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_a_missing_plugin_names_what_to_give(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["list", "--plugin", "nowhere/mine.py"]) == 2
    assert capsys.readouterr().err == ("rvqvae-bench: error: --plugin nowhere/mine.py: no such "
                                       "file; give a .py file or an importable module name\n")
    assert main(["list", "--plugin", "not_a_module_xyz"]) == 2
    assert capsys.readouterr().err == (
        "rvqvae-bench: error: --plugin not_a_module_xyz: no module of that name is importable; "
        "give a .py file, install the package, or add its folder to PYTHONPATH\n")


def test_install_loads_a_file_plugin_from_its_source_text_once(tmp_path, monkeypatch):
    """What a Ray worker does: no file on its disk, the driver's source text is enough."""
    from bench import plugins
    from rvqvae.models import MODELS

    code = ("from rvqvae.models import register_model\nfrom rvqvae.models.vqvae import VQVAE\n"
            "@register_model('plugin-test-only-model')\nclass Mine(VQVAE):\n    pass\n")
    plugin = plugins.Plugin("mine", "sha256:0", "rvqvae_bench_plugin_mine_test",
                            file=str(tmp_path / "gone.py"), code=code)
    monkeypatch.setattr(plugins, "_LOADED", {})
    try:
        plugins.install([plugin])
        plugins.install([plugin])  # a reused worker: not registered twice
        entry = MODELS.entry("plugin-test-only-model")
        assert plugins.origin(entry.source) == "plugin mine"
        assert plugins.loaded_plugins() == [plugin]
    finally:
        MODELS.unregister("plugin-test-only-model")
        sys.modules.pop("rvqvae_bench_plugin_mine_test", None)


def test_the_ci_guide_records_a_baseline_and_both_workflows_gate_against_it(real_data,
                                                                            tmp_path):
    """docs/ci.md's commands, run as written on the example plugin: the baseline recording,
    then the steps of the GitHub workflow (the GitLab job's script is the same commands)."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "ci.md").read_text()
    (record,) = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    github, gitlab = (yaml.safe_load(block)
                      for block in re.findall(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M))
    steps = [step["run"] for step in github["jobs"]["gate"]["steps"] if "run" in step]
    assert steps == gitlab["gate"]["script"]
    assert gitlab["gate"]["artifacts"]["reports"]["junit"] == "gate.xml"
    install, *gate = steps
    assert install.startswith("pip install")  # this environment has the package already
    shutil.copy(EXAMPLE, tmp_path / "my_plugin.py")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                   "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                            os.environ.get("PATH", "")])}
    for command in [*record.strip().splitlines(), *gate]:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "sample_mean_32" in (tmp_path / "baseline" / "example.csv").read_text()
    junit = (tmp_path / "gate.xml").read_text()
    assert "sample_mean_32" in junit and "<failure" not in junit
    assert (tmp_path / "gate.md").read_text().strip()
