"""One call per cell: every metric of a trained model on its scenario's data.

>>> values = evaluate_cell(model, data, scenario, n_samples=2000, extractor="domain", seed=0)
>>> [(v.metric, v.value, v.status) for v in values]

Metric groups live in the ``METRICS`` registry (name -> ``function(ctx)``), returning their
values, or a :class:`Measured` with the values and any artefacts the runner should keep (the
detection group returns its outlier scores, for the report's ROC figures).
``evaluate_cell`` runs the selected ones (all by default, in name order). Add a metric
without forking::

    @METRICS.register("sharpness")
    def _sharpness(ctx: EvalContext) -> list[MetricValue]:
        return [defined("sharpness", my_sharpness(ctx.samples), n_samples=ctx.n_samples)]

``ctx.samples`` (drawn once with ``model.sample(n_samples, seed)``) and ``ctx.domain`` (the
scenario's domain classifier and outlier mask) are computed on first use and shared by every
context of the cell (:meth:`EvalContext.with_extractor`); ``ctx.fit`` describes the training
run (for the training throughput).
Expected ``data`` fields (the scenario's ``ScenarioData``): ``train_images``,
``train_is_outlier``, ``clean_test_images``, ``mixed_test_images``, ``mixed_test_is_outlier``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.metrics.catalog import metric_name
from bench.metrics.detection import detection_metrics
from bench.metrics.extractors import needs_domain, resolve_extractor
from bench.metrics.fid import (
    KID_SUBSETS,
    generation_metric_names,
    generation_metrics_with_protocol,
    kid_std_undefined,
)
from bench.metrics.health import health_values, health_verdict
from bench.metrics.outlier_mode import outlier_mode_metric_name, outlier_mode_rate, scenario_domain
from bench.metrics.perplexity import codebook_perplexities
from bench.metrics.reconstruction import reconstruction_mse
from bench.metrics.values import MetricValue, defined, undefined
from rvqvae.registry import Registry

METRICS: Registry[Any] = Registry("metric")


@dataclass(frozen=True)
class FitRecord:
    """What the training run was: images trained on, epochs run, wall seconds of ``fit``, and
    the per-epoch history ``fit`` returned."""

    n_images: int
    epochs: int
    seconds: float
    history: tuple = ()


@dataclass
class Measured:
    """What metric groups give back: their values, and artefacts by name (e.g. ``scores``)."""

    values: list[MetricValue] = field(default_factory=list)
    artefacts: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalContext:
    """Everything a metric function may use; ``samples`` and ``domain`` are computed lazily
    into ``shared``, which every context of the cell holds (see :meth:`with_extractor`)."""

    model: Any
    data: Any
    scenario: Any
    n_samples: int = 2000
    extractor: str = "domain"
    seed: int = 0
    device: str = "cpu"
    kid_subsets: int = KID_SUBSETS
    fit: FitRecord | None = None
    #: progress lines (one per metric group, with its time); None: silent
    log: Callable[[str], None] | None = None
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> torch.Tensor:
        if "samples" not in self.shared:
            started = time.perf_counter()
            with torch.no_grad():
                self.shared["samples"] = self.model.sample(
                    self.n_samples, seed=self.seed).detach().cpu()
            self.seconds["sampling"] = time.perf_counter() - started
        return self.shared["samples"]

    @property
    def seconds(self) -> dict[str, float]:
        """Wall seconds per phase of the evaluation so far: ``sampling`` and one entry per metric
        group run (``metrics_<group>``, without the sampling it triggered)."""
        return self.shared.setdefault("seconds", {})

    def with_extractor(self, extractor: str) -> EvalContext:
        """The same cell measured with another feature extractor (samples, domain shared)."""
        return dataclasses.replace(self, extractor=extractor)

    @property
    def domain(self):
        """(domain classifier, outlier-class mask) of the scenario.

        The classifier seed is fixed (0), not the cell seed: it is the measuring instrument,
        the same for every cell, so values of different seeds stay comparable.
        """
        if "domain" not in self.shared:
            self.shared["domain"] = scenario_domain(self.scenario, seed=0)
        return self.shared["domain"]

    @property
    def recon_mse(self) -> float:
        """The clean-test reconstruction MSE (computed once, shared by the groups using it)."""
        if "recon_mse" not in self.shared:
            self.shared["recon_mse"] = reconstruction_mse(self.model, self.data.clean_test_images)
        return self.shared["recon_mse"]

    @property
    def reference_key(self) -> str:
        s = self.scenario
        classes = getattr(s, "inlier_classes", None)
        classes = "all" if not classes else "-".join(str(c) for c in classes)
        return f"{s.inlier}-test-{classes}"


def evaluate_cell(
    model,
    data,
    scenario,
    *,
    n_samples: int = 2000,
    extractor: str = "domain",
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    device: str = "cpu",
    kid_subsets: int = KID_SUBSETS,
) -> list[MetricValue]:
    """For library use: the values of the selected metric groups (default: every group in
    ``METRICS``) of one fitted model. The runner does not call this: it builds the context
    with the cell's fit record and calls :func:`run_metrics` (which also gives the artefacts)
    and :func:`phase_costs`.

    Values that cannot exist (AUROC at epsilon = 0, FID of NaN samples) come back
    ``undefined`` with their reason; genuine bugs raise.
    """
    ctx = EvalContext(
        model,
        data,
        scenario,
        n_samples=n_samples,
        extractor=extractor,
        seed=seed,
        device=device,
        kid_subsets=kid_subsets,
    )
    return run_metrics(ctx, metrics).values


def run_metrics(ctx: EvalContext, metrics: Sequence[str] | None = None) -> Measured:
    """The selected metric groups (default: all, in name order) on an existing context: their
    values in order and their artefacts (a name given by two groups is an error).

    Each group that finishes logs one line through ``ctx.log`` with its wall time (the first
    group that needs the samples includes drawing them).
    """
    result = Measured()
    for name in metrics if metrics is not None else METRICS.names():
        started = time.perf_counter()
        sampling_before = ctx.seconds.get("sampling", 0.0)
        group = METRICS.get(name)(ctx)
        group = group if isinstance(group, Measured) else Measured(list(group))
        result.values.extend(group.values)
        clash = set(group.artefacts) & set(result.artefacts)
        if clash:
            raise ValueError(f"metric group {name!r} returns artefact {sorted(clash)[0]!r} "
                             "that another group already returned")
        result.artefacts.update(group.artefacts)
        elapsed = time.perf_counter() - started
        key = f"metrics_{name}"  # summed over extractors
        ctx.seconds[key] = ctx.seconds.get(key, 0.0) + elapsed - (
            ctx.seconds.get("sampling", 0.0) - sampling_before)
        if ctx.log is not None:
            ctx.log(f"metrics {name} ({ctx.extractor}): {len(group.values)} value(s) in "
                    f"{time.perf_counter() - started:.1f} s")
    return result


@METRICS.register("generation", description="FID and KID of samples vs the clean inlier test split",
                  source=generation_metrics_with_protocol.__module__)
def _generation(ctx: EvalContext) -> list[MetricValue]:
    domain = ctx.domain[0] if needs_domain(ctx.extractor) else None
    if not bool(torch.isfinite(ctx.samples).all()):
        label = resolve_extractor(ctx.extractor, domain=domain).label
        reason = "the model's samples hold NaN/infinite values"
        return [undefined(name, reason)
                for name in generation_metric_names(label, ctx.n_samples).values()]
    numbers, protocol = generation_metrics_with_protocol(
        ctx.samples,
        ctx.data.clean_test_images,
        extractor=ctx.extractor,
        domain=domain,
        reference_key=ctx.reference_key,
        kid_subsets=ctx.kid_subsets,
        device=ctx.device,
        seed=ctx.seed,
    )
    reason = kid_std_undefined(protocol["n_samples"], protocol["kid_subset_size"])
    return [defined(name, value, **protocol) if math.isfinite(value)
            else undefined(name, reason or "not a finite number", **protocol)
            for name, value in numbers.items()]


@METRICS.register(
    "outlier_mode", description="share of samples the domain classifier calls outliers",
    source=outlier_mode_rate.__module__,
)
def _outlier_mode(ctx: EvalContext) -> list[MetricValue]:
    name = outlier_mode_metric_name(ctx.n_samples)
    if not bool(torch.isfinite(ctx.samples).all()):
        return [undefined(name, "the model's samples hold NaN/infinite values")]
    classifier, mask = ctx.domain
    protocol = {
        "classifier": classifier.extractor_name,
        "classifier_source": classifier.source,
        "classifier_datasets": classifier.datasets,
        "outlier_classes": [
            n for n, m in zip(classifier.class_names, mask.tolist(), strict=True) if m
        ],
        "n_samples": ctx.n_samples,
    }
    return [defined(name, outlier_mode_rate(ctx.samples.clamp(0, 1), classifier, mask), **protocol)]


@METRICS.register("detection", description="AUROC, AUPR-in/out, FPR@95TPR of every outlier score",
                  source=detection_metrics.__module__)
def _detection(ctx: EvalContext) -> Measured:
    """Values, and artefact ``scores``: {mode: {"is_outlier": ..., score name: ...}}."""
    result = Measured(artefacts={"scores": {}})
    splits = (
        ("transductive", ctx.data.train_images, ctx.data.train_is_outlier),
        ("inductive", ctx.data.mixed_test_images, ctx.data.mixed_test_is_outlier),
    )
    for mode, images, is_outlier in splits:
        with torch.no_grad():
            scores = _batched_scores(ctx.model, images)
        result.artefacts["scores"][mode] = {"is_outlier": is_outlier.bool(), **scores}
        result.values.extend(detection_metrics(scores, is_outlier, mode=mode))
    return result


@METRICS.register("health", description="did the model learn: recon vs the mean image, sample "
                  "spread, loss drop, KL; artefact 'health' (ok | degenerate: reasons)",
                  source=health_values.__module__)
def _health(ctx: EvalContext) -> Measured:
    history = ctx.fit.history if ctx.fit is not None else ()
    values = health_values(ctx.recon_mse, ctx.data.train_images, ctx.data.clean_test_images,
                           ctx.samples, history)
    verdict = health_verdict(values)
    values.append(defined("degenerate", float(verdict != "ok")))
    return Measured(values, {"health": verdict})


@METRICS.register("perplexity", description="codebook usage on the clean test split (VQ models)",
                  source=codebook_perplexities.__module__)
def _perplexity(ctx: EvalContext) -> list[MetricValue]:
    images = ctx.data.clean_test_images
    return [defined(name, value, n_images=len(images))
            for name, value in codebook_perplexities(ctx.model, images).items()]


@METRICS.register("reconstruction", description="recon MSE on the clean test split",
                  source=reconstruction_mse.__module__)
def _reconstruction(ctx: EvalContext) -> list[MetricValue]:
    images = ctx.data.clean_test_images
    return [defined("recon_mse_clean_test", ctx.recon_mse, n_images=len(images))]


@METRICS.register("training", description="training images x epochs / fit wall seconds")
def _training(ctx: EvalContext) -> list[MetricValue]:
    if ctx.fit is None:  # evaluated outside a run: no training to measure
        return []
    rate = ctx.fit.n_images * max(ctx.fit.epochs, 1) / ctx.fit.seconds
    # A machine fact, not a measurement protocol: the thread count it ran on.
    return [MetricValue("train_images_per_s", rate, protocol={"threads": torch.get_num_threads()})]


def phase_costs(ctx: EvalContext) -> list[MetricValue]:
    """The cell's cost per phase, as metric values ``seconds_<phase>`` (wall seconds on this
    machine, its thread count as protocol): ``fit`` (training, the prior included), ``prior``
    (its share, for models with one), ``sampling`` and ``metrics_<group>`` per metric group."""
    phases: dict[str, float] = {}
    if ctx.fit is not None:
        phases["fit"] = ctx.fit.seconds
    prior = getattr(ctx.model, "prior_seconds", None)
    if isinstance(prior, float):
        phases["prior"] = prior
    phases.update(ctx.seconds)
    threads = {"threads": torch.get_num_threads()}
    return [MetricValue(metric_name("seconds", phase=phase), value, protocol=threads)
            for phase, value in phases.items()]


def _batched_scores(model, images: torch.Tensor, batch_size: int = 1024) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images), batch_size):
        for name, score in model.outlier_scores(images[start : start + batch_size]).items():
            parts.setdefault(name, []).append(torch.as_tensor(score).detach().cpu().flatten())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}
