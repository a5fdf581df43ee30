"""The Python examples in the README and in docs/ run, each file's in a fresh interpreter.

As vector-quantize-pytorch's ``tests/test_readme.py`` does: a snippet that stops working is a
failing test, not a stale page. Every fenced ``python`` block of a file runs in order in one
subprocess (a fresh interpreter, so examples that register models, metrics or backends do not
leak into other tests); README snippets get :data:`README_SETUP` first (the tensors they name).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_SETUP = """
import torch
images = torch.rand(64, 1, 28, 28)
x, codebook = torch.randn(100, 8), torch.randn(16, 8)
w = 1 / (codebook.var(0) + 1e-6)
covariance = torch.cov(codebook.T)
"""
DOCUMENTS = ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                  for p in (ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_extending_guide_has_an_example_for_each_kind_of_extension():
    text = (ROOT / "docs" / "extending.md").read_text()
    for heading in ("## A model", "## A metric", "## A scenario", "## A kernel backend"):
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        assert python_blocks(section), heading
    # the plugin's example is a file of its own, run from the CLI by tests/test_plugins.py
    section = text.split("## A plugin", 1)[1]
    assert "(../examples/plugin/rvqvae_bench_example.py)" in section


@pytest.mark.parametrize("document", [d for d in DOCUMENTS
                                      if python_blocks((ROOT / d).read_text())])
def test_python_examples_run(document, tmp_path):
    blocks = python_blocks((ROOT / document).read_text())
    setup = README_SETUP  # the tensors the README's and the reference pages' snippets name
    script = "\n".join([setup, *blocks])
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{document}:\n{done.stderr[-3000:]}"


MAP_KINDS = {"models": "model", "metric-groups": "metric group",
             "scenario-families": "scenario family", "quantizer-backends": "kernel backend",
             "kernel-grids": "kernel grid", "presets": "preset",
             "feature-extractors": "feature extractor", "datasets": "dataset",
             "executors": "executor"}


def test_readme_map_names_every_registered_entry_with_its_file():
    """Against the built-in registries, listed by a fresh interpreter (other tests register
    entries of their own in this one)."""
    done = subprocess.run([sys.executable, "-m", "bench.cli", "list", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    registries = json.loads(done.stdout)
    section = (ROOT / "README.md").read_text().split("## Where things live", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    # rows that are not registries: one each, pointing at their file
    files = {"| metric catalog": "bench/metrics/catalog.py", "| figures": "bench/report/figures.py",
             "| kernel peers": "bench/kernels/contenders.py",
             "| gate tolerances": "bench/tolerances.toml"}
    others = [row for row in rows if row[0] in files]
    assert sorted(row[0] for row in others) == sorted(files)
    assert all(files[row[0]] in row[2] and (ROOT / files[row[0]]).is_file() for row in others)
    rows = [row for row in rows if row not in others]
    listed = {(kind.strip("| "), name.strip("`"), file.split("](")[1].rstrip(") |"))
              for kind, names, file in rows[1:] for name in names.split(", ")}
    expected = {(MAP_KINDS[kind], row["name"], row["file"])
                for kind in MAP_KINDS for row in registries[kind]}
    assert listed == expected
    for _, _, file in listed:
        assert (ROOT / file).is_file(), file


def test_the_readme_first_screen_holds_the_commands_the_headline_and_every_page():
    """What a newcomer reads first (80 lines): the two commands, what the tool does, the
    headline results, and one link to each page the long reference moved to."""
    first = "\n".join((ROOT / "README.md").read_text().splitlines()[:80])
    assert "python3 -m tox -e quick" in first and "python3 -m tox -e py" in first
    assert "**What it does.**" in first and "## Headline results" in first
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in first, page.name
