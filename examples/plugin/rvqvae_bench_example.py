"""An example rvqvae-bench plugin: one module that registers a model, a metric group with its
catalog entry, a kernel backend, a feature extractor, a dataset, a scenario and a preset.

Use it without installing anything::

    rvqvae-bench list --plugin examples/plugin/rvqvae_bench_example.py
    rvqvae-bench run --plugin examples/plugin/rvqvae_bench_example.py --preset example --out runs/ex

or install it (``pip install examples/plugin``): its ``pyproject.toml`` declares the entry point
``rvqvae_bench.plugins``, so every command loads it without ``--plugin``.
"""

import torch

from bench.data.datasets import DATASETS, DatasetReader
from bench.metrics.catalog import register_metric
from bench.metrics.domain import register_with_fidelity
from bench.metrics.evaluate import METRICS
from bench.metrics.extractors import EXTRACTORS, FeatureExtractorSpec
from bench.metrics.values import defined
from bench.presets import PRESETS, ModelSpec, Preset
from bench.scenarios import Scenario, register_scenario
from rvqvae.models import register_model
from rvqvae.models.vqvae import VQVAE
from rvqvae.quantize import BACKENDS, Backend
from rvqvae.quantize.chunked import exact_distances

__version__ = "0.1.0"


# A model: a VQ-VAE trained every epoch on the first half of its training set.
@register_model("vqvae-first-half", description="VQ-VAE trained on the first half of the data")
class FirstHalfVQVAE(VQVAE):
    def _start_epoch(self, epoch, images, generator):
        return torch.arange(images.shape[0] // 2), {}  # example ids, extra history fields


# A metric: its catalog entry (tables, figures and the gate derive from it) and its group.
register_metric("sample_mean", r"sample_mean_\d+", "generation", "lower",
                "mean pixel value of the generated samples", unit="pixel",
                table="generation", abs=0.01)


@METRICS.register("sample_mean", description="mean pixel of the generated samples")
def sample_mean(ctx):
    return [defined(f"sample_mean_{ctx.n_samples}", float(ctx.samples.mean()),
                    n_samples=ctx.n_samples)]


# A kernel backend: nearest codeword one row at a time (slow and obviously right).
def nearest_loop(x, codebook, weights=None):
    w = torch.ones(x.shape[1], dtype=x.dtype) if weights is None else weights.to(x.dtype)
    indices = torch.stack([((row - codebook) ** 2 @ w).argmin() for row in x])
    return indices, exact_distances(x, codebook, indices, weights)


BACKENDS.register("loop", Backend(nearest_loop, lambda device: device.type == "cpu"),
                  description="one row at a time (the example plugin's backend)")


# A feature extractor: the scenario's domain classifier, read at its logits (FID/KID on them).
@EXTRACTORS.register("domain-logits", description="logits of the scenario's domain classifier",
                     needs_domain=True)
def domain_logits(*, domain=None, **_):
    if domain is None:
        raise ValueError("extractor 'domain-logits' needs the scenario's domain classifier")
    return FeatureExtractorSpec("domain-logits", register_with_fidelity(domain),
                                domain.weights_hash, int(domain.head.out_features), "logits",
                                domain.source)


# A dataset: MNIST with inverted pixels (white background), read through MNIST's own reader.
def _inverted(split, files):
    images, labels, classes = DATASETS.get("mnist").decode(split, files)
    return 255 - images, labels, classes


_mnist = DATASETS.get("mnist")
DATASETS.register("mnist-inverted", DatasetReader(
    locate=_mnist.locate, decode=_inverted, splits=_mnist.splits,
    image_shape=_mnist.image_shape, num_classes=_mnist.num_classes,
    class_counts=_mnist.class_counts), description="MNIST with inverted pixels")

# A scenario on that dataset, and a small preset that runs the plugin's model and metric.
register_scenario(Scenario("mnist+inverted@0.2", inlier="mnist", outlier="mnist-inverted",
                           epsilon=0.2, train_size=64, test_size=32, clean_test_size=64),
                  description="MNIST contaminated by inverted MNIST digits")
PRESETS.register("example", Preset(
    name="example", description="the example plugin's model and metric on its own scenario",
    scenarios=("mnist+inverted@0.2",),
    models=(ModelSpec("vqvae-first-half", {
        "epochs": 1, "prior_epochs": 1, "codebook_size": 16, "hidden_channels": 8,
        "residual_channels": 8, "latent_dim": 8, "quantize_backend": "loop"}),),
    n_samples=32, metrics=("sample_mean",)))
