"""Scenarios: exact contamination, determinism, where every image comes from, validation
messages, the registry and the ``scenarios`` command. Built on the real MNIST / Fashion-MNIST."""

from __future__ import annotations

import json

import pytest
import torch

from bench.cli import main
from bench.data import load_dataset
from bench.scenarios import (
    FAMILIES,
    SCENARIOS,
    Scenario,
    get_scenario,
    load_scenario_file,
    outlier_count,
    register_scenario,
)
from rvqvae.errors import UserError


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    scaled = images * 255
    assert torch.equal(scaled, scaled.round()), "pixels must lie on the 256-level grid"
    return scaled.round().to(torch.uint8)


@pytest.mark.parametrize(
    "epsilon, n",
    [
        (0.0, 1000),
        (0.05, 999),
        (0.1, 1001),
        (0.2, 777),
        (0.3, 10),
        (0.5, 333),
        (0.45, 1),
        (0.123, 4321),
    ],
)
def test_exactly_round_epsilon_n_outliers(real_data, epsilon, n):
    scenario = get_scenario("mnist+fmnist@0.2").with_(epsilon=epsilon, train_size=n, test_size=50)
    data = scenario.build()
    assert data.train_images.shape == (n, 1, 28, 28) and data.train_images.dtype == torch.float32
    assert int(data.train_is_outlier.sum()) == round(epsilon * n) == scenario.n_outliers
    assert int((~data.train_is_outlier).sum()) == n - round(epsilon * n) == scenario.n_inliers


def test_outlier_count_is_pythons_round():
    assert outlier_count(0.5, 333) == 166  # 166.5: half to even
    assert outlier_count(0.5, 335) == 168  # 167.5
    assert outlier_count(0.05, 999) == 50 and outlier_count(0.0, 7) == 0


def test_same_seed_same_data_other_seed_other_data(real_data):
    scenario = get_scenario("mnist+fmnist@0.2").with_(train_size=2000, test_size=300)
    first, again = scenario.build(seed=3), scenario.build(seed=3)
    assert first.fingerprint() == again.fingerprint()
    assert torch.equal(first.train_indices, again.train_indices)
    other = scenario.build(seed=4)
    assert other.fingerprint() != first.fingerprint()
    assert not torch.equal(other.train_indices, first.train_indices)
    assert (
        scenario.with_(seed=3).build().fingerprint() == first.fingerprint()
    )  # seed=None: spec's seed
    # the training draw does not depend on the test sizes (separate generators per purpose)
    resized = scenario.with_(test_size=100, clean_test_size=50).build(seed=3)
    assert torch.equal(resized.train_indices, first.train_indices)


@pytest.mark.parametrize("family", ["mnist+uniform", "mnist+gaussian", "mnist7+rest"])
def test_determinism_for_synthetic_and_class_outliers(real_data, family):
    scenario = get_scenario(f"{family}@0.3").with_(train_size=500, test_size=100)
    assert scenario.build(1).fingerprint() == scenario.build(1).fingerprint()
    assert scenario.build(1).fingerprint() != scenario.build(2).fingerprint()


def test_mnist_fmnist_flags_match_the_source_images(real_data):
    data = get_scenario("mnist+fmnist@0.2").with_(train_size=3000, test_size=400).build()
    mnist_train, fmnist_train = load_dataset("mnist", "train"), load_dataset("fmnist", "train")
    mnist_test, fmnist_test = load_dataset("mnist", "test"), load_dataset("fmnist", "test")
    flags, index, pixels = data.train_is_outlier, data.train_indices, _as_uint8(data.train_images)
    assert torch.equal(pixels[flags], fmnist_train.images[index[flags]])
    assert torch.equal(pixels[~flags], mnist_train.images[index[~flags]])
    assert torch.equal(data.train_labels[flags], fmnist_train.labels[index[flags]])
    assert torch.equal(data.train_labels[~flags], mnist_train.labels[index[~flags]])
    assert len(set(index[flags].tolist())) == int(flags.sum())  # drawn without replacement
    # shuffled: outliers are spread over the whole set, not appended at the end
    assert 0.1 < flags[:1500].float().mean() < 0.3
    # mixed test: 400 + 400, outliers from the TEST split of Fashion-MNIST
    test_flags, test_index = data.mixed_test_is_outlier, data.mixed_test_indices
    assert int(test_flags.sum()) == 400 and len(test_flags) == 800
    test_pixels = _as_uint8(data.mixed_test_images)
    assert torch.equal(test_pixels[test_flags], fmnist_test.images[test_index[test_flags]])
    assert torch.equal(test_pixels[~test_flags], mnist_test.images[test_index[~test_flags]])


def test_clean_test_set_is_the_inlier_test_split_without_outliers(real_data):
    mnist_test = load_dataset("mnist", "test")
    data = get_scenario("mnist+fmnist@0.3").with_(train_size=500, test_size=100).build()
    assert torch.equal(_as_uint8(data.clean_test_images), mnist_test.images)
    capped = (
        get_scenario("mnist+fmnist@0.3")
        .with_(train_size=500, test_size=100, clean_test_size=700)
        .build(5)
    )
    assert torch.equal(_as_uint8(capped.clean_test_images), mnist_test.images[:700])


def test_one_vs_rest_classes_and_mixed_test_composition(real_data):
    scenario = get_scenario("mnist3+rest@0.1")
    assert scenario.inlier_classes == (3,) and scenario.outlier_classes == (
        0,
        1,
        2,
        4,
        5,
        6,
        7,
        8,
        9,
    )
    data = scenario.build()
    assert set(data.train_labels[~data.train_is_outlier].tolist()) == {3}
    assert 3 not in set(data.train_labels[data.train_is_outlier].tolist())
    assert int(data.train_is_outlier.sum()) == 500 and len(data.train_labels) == 5000
    assert set(data.clean_test_labels.tolist()) == {3} and len(data.clean_test_labels) == 1010
    # k = min(test_size 2000, 1010 test threes, 8990 other digits) per side
    assert int(data.mixed_test_is_outlier.sum()) == 1010 and len(data.mixed_test_labels) == 2020
    assert set(data.mixed_test_labels[~data.mixed_test_is_outlier].tolist()) == {3}
    assert 3 not in set(data.mixed_test_labels[data.mixed_test_is_outlier].tolist())


@pytest.mark.parametrize(
    "family, mean, std_range",
    [("mnist+uniform", 0.5, (0.28, 0.30)), ("mnist+gaussian", 0.5, (0.22, 0.25))],
)
def test_synthetic_outliers_on_the_pixel_grid(real_data, family, mean, std_range):
    data = get_scenario(f"{family}@0.4").with_(train_size=1000, test_size=200).build()
    outliers = data.train_images[data.train_is_outlier]
    assert outliers.shape == (400, 1, 28, 28)
    _as_uint8(outliers)
    assert abs(outliers.mean().item() - mean) < 0.01
    assert std_range[0] < outliers.std().item() < std_range[1]
    assert set(data.train_labels[data.train_is_outlier].tolist()) == {-1}
    assert int(data.mixed_test_is_outlier.sum()) == 200


def test_scenario_facts_for_the_metrics():
    assert get_scenario("mnist+fmnist@0.2").outlier_is_dataset
    assert get_scenario("fmnist+mnist@0.2").outlier_dataset == "mnist"
    assert not get_scenario("mnist0+rest@0.2").outlier_is_dataset
    assert get_scenario("mnist0+rest@0.2").outlier_dataset == "mnist"
    assert get_scenario("mnist+uniform@0.2").outlier_dataset is None
    assert get_scenario("mnist+uniform@0.2").outlier_kind == "synthetic"


# ---------------------------------------------------------------------- validation messages


@pytest.mark.parametrize("epsilon", [1, 1.5, -0.1, float("nan")])
def test_epsilon_outside_zero_one(epsilon):
    with pytest.raises(UserError) as error:
        Scenario("bad", "mnist", "fmnist", epsilon=epsilon)
    assert str(error.value) == (
        "scenario 'bad': epsilon must be in [0, 1) (outliers / all training samples), "
        f"got {epsilon}"
    )


def test_train_size_larger_than_available():
    with pytest.raises(UserError) as error:
        Scenario("big", "mnist", "fmnist", train_size=70_000)
    assert str(error.value) == (
        "scenario 'big': needs 70000 inlier training images but mnist has 60000; "
        "lower train_size or epsilon"
    )
    with pytest.raises(UserError) as error:
        get_scenario("mnist5+rest@0").with_(train_size=6000)
    assert str(error.value) == (
        "scenario 'mnist5+rest@0': needs 6000 inlier training images but mnist "
        "classes [5] has 5421; lower train_size or epsilon"
    )
    with pytest.raises(UserError) as error:
        Scenario(
            "many",
            "fmnist",
            "mnist",
            inlier_classes=(0, 1, 2, 3),
            outlier_classes=(1,),
            epsilon=0.5,
            train_size=20_000,
        )
    assert str(error.value) == (
        "scenario 'many': needs 10000 outlier training images but mnist "
        "classes [1] has 6742; lower train_size or epsilon"
    )


def test_unknown_dataset_source_and_scenario_list_known_names():
    with pytest.raises(UserError) as error:
        Scenario("x", "mnsit", "fmnist")
    assert str(error.value) == "dataset 'mnsit' is unknown; known: cifar10, fmnist, mnist, svhn"
    with pytest.raises(UserError) as error:
        Scenario("x", "mnist", "pink-noise")
    assert str(error.value) == (
        "scenario 'x': outlier source 'pink-noise' is unknown; known: classes, "
        "uniform-noise, gaussian-noise, cifar10, fmnist, mnist, svhn"
    )
    with pytest.raises(UserError) as error:
        get_scenario("mnist+kmnist@0.2")
    message = str(error.value)
    assert message.startswith(
        "scenario 'mnist+kmnist@0.2' is unknown; known families (add @epsilon, "
        "e.g. mnist+fmnist@0.2): fmnist+gaussian, fmnist+mnist, fmnist+uniform, "
    )
    assert "mnist0+rest" in message and "mnist9+rest" in message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(inlier="mnist", outlier="cifar10"),
            "inlier mnist images are 1x28x28 but outlier cifar10 images are 3x32x32; "
            "pick datasets of the same shape",
        ),
        (
            dict(inlier="mnist", outlier="classes"),
            "outlier 'classes' needs inlier_classes (the others are outliers)",
        ),
        (
            dict(inlier="mnist", outlier="classes", inlier_classes=(1, 2), outlier_classes=(2, 3)),
            "outlier_classes must be non-empty and disjoint from inlier_classes (both hold [2])",
        ),
        (
            dict(inlier="mnist", outlier="mnist"),
            "outlier 'mnist' is the inlier dataset; use outlier='classes' with outlier_classes",
        ),
        (
            dict(inlier="mnist", outlier="fmnist", inlier_classes=(10,)),
            "inlier_classes must be distinct class indices in 0..9, got (10,)",
        ),
        (
            dict(inlier="mnist", outlier="uniform-noise", outlier_classes=(1,)),
            "outlier_classes makes no sense for synthetic outliers (uniform-noise)",
        ),
        (
            dict(inlier="mnist", outlier="fmnist", train_size=0),
            "train_size must be a positive integer, got 0",
        ),
    ],
)
def test_inconsistent_specs(kwargs, message):
    with pytest.raises(UserError) as error:
        Scenario("s", **kwargs)
    assert str(error.value) == f"scenario 's': {message}"


# ---------------------------------------------------------------------- registry


def test_registry_holds_every_family_at_every_epsilon():
    for family in (
        "mnist+fmnist",
        "fmnist+mnist",
        "mnist+uniform",
        "mnist+gaussian",
        *(f"mnist{k}+rest" for k in range(10)),
    ):
        assert family in FAMILIES
        for epsilon in ("0", "0.05", "0.1", "0.2", "0.3", "0.4", "0.5"):
            scenario = SCENARIOS.get(f"{family}@{epsilon}")
            assert scenario.name == f"{family}@{epsilon}" and scenario.epsilon == float(epsilon)
    assert get_scenario("mnist+fmnist@0.2").train_size == 10_000


def test_any_epsilon_of_a_family_and_with_renames():
    scenario = get_scenario("mnist+fmnist@0.150")
    assert scenario.name == "mnist+fmnist@0.15" and scenario.n_outliers == 1500
    assert get_scenario("mnist+fmnist@0.2").with_(epsilon=0.3).name == "mnist+fmnist@0.3"
    assert get_scenario("mnist+fmnist@0.2").with_(train_size=500).name == "mnist+fmnist@0.2"
    with pytest.raises(UserError, match=r"'x' is not a number \(want e.g. mnist\+fmnist@0.2\)"):
        get_scenario("mnist+fmnist@x")


def test_default_class_outliers_follow_new_inlier_classes():
    moved = get_scenario("mnist0+rest@0.1").with_(inlier_classes=(3, 4))
    assert moved.outlier_classes == (0, 1, 2, 5, 6, 7, 8, 9) and moved.name == "mnist0+rest@0.1"
    explicit = Scenario(
        "x", "mnist", "classes", inlier_classes=(0,), outlier_classes=(8,), train_size=900
    )
    assert explicit.with_(inlier_classes=(1,)).outlier_classes == (8,)


@pytest.fixture
def cleanup_registry():
    before = set(SCENARIOS.names())
    yield
    for name in set(SCENARIOS.names()) - before:
        SCENARIOS.unregister(name)


def test_register_your_own_and_from_toml(tmp_path, cleanup_registry):
    mine = register_scenario(
        Scenario(
            "digits17+fmnist@0.1",
            "mnist",
            "fmnist",
            inlier_classes=[1, 7],
            epsilon=0.1,
            train_size=2000,
        )
    )
    assert get_scenario("digits17+fmnist@0.1") is mine and mine.inlier_classes == (1, 7)
    with pytest.raises(UserError, match="scenario 'digits17\\+fmnist@0.1' is already registered"):
        register_scenario(mine)
    path = tmp_path / "mine.toml"
    path.write_text(
        '[scenario."shirts+mnist@0.25"]\ninlier = "fmnist"\ninlier_classes = [0, 6]\n'
        'outlier = "mnist"\nepsilon = 0.25\ntrain_size = 4000\ndescription = "tops"\n'
    )
    (loaded,) = load_scenario_file(path)
    assert get_scenario("shirts+mnist@0.25") == loaded and loaded.n_outliers == 1000
    assert SCENARIOS.entry("shirts+mnist@0.25").description == "tops"
    path.write_text('[scenario.typo]\ninlier = "mnist"\noutlier = "fmnist"\nepsilom = 0.1\n')
    with pytest.raises(UserError, match=r"scenario 'typo' has unknown key\(s\) epsilom; known: "):
        load_scenario_file(path)


# ---------------------------------------------------------------------- CLI


def test_cli_scenarios_json_and_table(capsys):
    assert main(["scenarios", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert (
        rows["mnist+fmnist@0.2"]["n_outliers"] == 2000
        and rows["mnist+fmnist@0.2"]["outlier"] == "fmnist"
    )
    assert set(rows) == set(SCENARIOS.names())
    assert main(["scenarios", "--grep", "mnist4+rest"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "name",
        "inlier",
        "outlier",
        "epsilon",
        "train",
        "size",
        "inliers",
        "outliers",
    ]
    assert lines[3].split() == [
        "mnist4+rest@0.1",
        "mnist[4]",
        "mnist[0-3,5-9]",
        "0.1",
        "5000",
        "4500",
        "500",
    ]
    assert len({len(line) for line in lines}) == 1 and len(lines) == 8  # aligned columns


def test_cli_error_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[scenario.bad]\ninlier = "mnist"\noutlier = "fmnist"\nepsilon = 1.0\n')
    assert main(["scenarios", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "rvqvae-bench: error: scenario 'bad': epsilon must be in [0, 1) (outliers / all "
        "training samples), got 1.0\n"
    )
