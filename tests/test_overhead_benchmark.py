"""The overhead benchmark (rule ``overhead``): its arms, its early stop, its recipes and the three tables it writes,
on real small models (the test config's CNN with random weights, torchvision ResNet-18 at 32 px)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import deepdrift
from deepdrift import DeepDriftMonitor
from experiments.calibration_check.bench_models import ModelRecipe, smooth_images
from experiments.calibration_check.config import CalibrationCostConfig, OverheadConfig, ReferenceModel
from experiments.calibration_check.overhead import PARTS, noop_hooks, tap_modules, time_cell
from experiments.calibration_check.run import OVERHEAD_OUTPUTS, overhead
from experiments.config import ConfigError, from_mapping
from experiments.models.zoo import build
from experiments.workflow_config import load_config_set

pytestmark = pytest.mark.filterwarnings("ignore::deepdrift.DeepDriftWarning")  # tiny calibrations, on purpose

RATIOS = ("step_bare", "step_bare_q25", "step_bare_q75", "step_floor", "floor_bare")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Time on one intra-op thread: two OpenMP threads on a shared 2-core machine wait on each other for seconds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def test_config():
    return load_config_set("test")


@pytest.fixture(scope="module")
def cnn_weights(test_config, tmp_path_factory) -> Path:
    """The test config's CNN with its initial (untrained) weights, saved as the training rule would."""
    path = tmp_path_factory.mktemp("models") / "cnn.safetensors"
    save_file(build(test_config.models["cnn"], test_config.data).state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def tables(test_config, cnn_weights, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The rule's entry run once on the test config: every table as written."""
    figures = tmp_path_factory.mktemp("figures")
    outputs = {name: [str(figures / f"{name}.{ext}") for ext in ("csv", "md", "tex")] for name in OVERHEAD_OUTPUTS}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        overhead(test_config, {"weights": [str(cnn_weights)]}, outputs)
    finally:
        torch.set_num_threads(previous)
    for files in outputs.values():
        assert all(Path(f).exists() for f in files)
    tex = Path(outputs["overhead"][2]).read_text()
    assert "1 intra-op threads" in tex and "floor" in tex
    return {name: pd.read_csv(files[0]) for name, files in outputs.items()}


@pytest.fixture
def resnet_monitor() -> tuple[torch.nn.Module, DeepDriftMonitor]:
    recipe = ModelRecipe.reference(ReferenceModel("resnet18", "torchvision", 32))
    model = recipe.build()
    return model, DeepDriftMonitor(model).calibrate(recipe.calibration_images(64).split(32), progress=False)


def _hooked(model: torch.nn.Module) -> dict[str, int]:
    return {name: len(m._forward_hooks) for name, m in model.named_modules() if m._forward_hooks}


def test_floor_hooks_exactly_the_monitors_taps_and_removes_them(resnet_monitor):
    model, monitor = resnet_monitor
    assert _hooked(model) == {}
    with noop_hooks(tap_modules(monitor)):
        assert _hooked(model) == {tap.name: 1 for tap in monitor.taps}
        model(torch.zeros(1, 3, 32, 32))
    assert _hooked(model) == {}
    with pytest.raises(RuntimeError, match="inside"), noop_hooks(tap_modules(monitor)):
        raise RuntimeError("inside")
    assert _hooked(model) == {}


def test_a_cell_interleaves_every_arm_and_stops_early_at_its_time_cap(resnet_monitor):
    model, monitor = resnet_monitor
    calibration = smooth_images(64, 3, 32, seed=0).split(32)
    fast = DeepDriftMonitor(model, **deepdrift.preset("fast")).calibrate(calibration, progress=False)
    cfg = OverheadConfig((), (), CalibrationCostConfig(()), repetitions=50, min_repetitions=4, max_seconds_per_cell=0.0)
    cell = time_cell(model, monitor, smooth_images(2, 3, 32, seed=5), cfg, fast)
    assert cell.repetitions == 4 and cell.taps == len(monitor.taps) == 5
    assert set(cell.arms) == {"bare", "floor", "step", "fast"}
    assert set(cell.parts) == set(PARTS) == {"taps_run", "statistics", "null_lookup", "fsm"}
    for values in (*cell.arms.values(), *cell.parts.values()):
        assert len(values) == 4 and np.all(values > 0)
    assert _hooked(model) == {}


def test_smooth_images_are_standardised_spatially_correlated_and_seeded():
    images = smooth_images(70, 3, 32, seed=1, chunk=16)
    assert images.shape == (70, 3, 32, 32)
    assert torch.allclose(images.mean(dim=(1, 2, 3)), torch.zeros(70), atol=1e-5)
    assert torch.allclose(images.std(dim=(1, 2, 3)), torch.ones(70), atol=1e-4)
    neighbours = torch.corrcoef(torch.stack([images[..., :-1].flatten(), images[..., 1:].flatten()]))[0, 1]
    assert neighbours > 0.8  # white noise would give ~0
    assert torch.equal(images, smooth_images(70, 3, 32, seed=1)) and not torch.equal(
        images, smooth_images(70, 3, 32, 2)
    )


def test_recipes_round_trip_through_json_and_rebuild_the_same_model(test_config, cnn_weights):
    study = ModelRecipe.study(test_config.models["cnn"], test_config.data, cnn_weights)
    assert ModelRecipe.from_json(study.to_json()) == study
    rebuilt = ModelRecipe.from_json(study.to_json()).build()
    for name, value in study.build().state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[name])
    assert study.calibration_images(8).shape == (8, 1, 32, 32)
    reference = ModelRecipe.reference(ReferenceModel("resnet18", "torchvision", 32, batch_sizes=(1, 2)), seed=3)
    assert ModelRecipe.from_json(reference.to_json()) == reference and reference.label == "resnet18@32"
    assert reference.batch_sizes == (1, 2)
    with pytest.raises(ValueError, match="fewer than"):
        study.timing_images(10**6)


def test_the_config_names_what_it_cannot_time():
    raw = {
        "models": ["cnn"],
        "reference_models": [{"name": "resnet18", "source": "torchvision", "resolution": 32}],
        "calibration_cost": {"models": ["cnn"]},
    }
    assert from_mapping(OverheadConfig, raw).labels == ("cnn", "resnet18@32")
    with pytest.raises(ConfigError, match=r"calibration_cost.models \['resnet50@224'\].*resnet18@32"):
        from_mapping(OverheadConfig, raw | {"calibration_cost": {"models": ["resnet50@224"]}}, "overhead")
    with pytest.raises(ConfigError, match="min_repetitions"):
        from_mapping(OverheadConfig, raw | {"repetitions": 3, "min_repetitions": 5}, "overhead")
    with pytest.raises(ConfigError, match="twice"):
        from_mapping(OverheadConfig, raw | {"reference_models": raw["reference_models"] * 2}, "overhead")
    with pytest.raises(ConfigError, match="source"):
        from_mapping(OverheadConfig, raw | {"reference_models": [{"name": "x", "source": "hub"}]}, "overhead")


@pytest.mark.slow
def test_overhead_table_has_every_model_batch_size_and_sane_ratios(tables, test_config):
    table, settings = tables["overhead"], test_config.calibration.overhead
    assert list(table["model"].unique()) == ["cnn", "resnet18@32"]
    assert list(table["batch_size"]) == [1, 4, 2]  # resnet18@32 at its own batch sizes
    assert list(table["resolution"]) == [32, 32, 32]
    assert (table["repetitions"] == settings.repetitions).all()
    assert "fast_ms" in table and "fast_bare" in table
    for column in ("bare_ms", "floor_ms", "step_ms", *RATIOS):
        assert np.isfinite(table[column]).all() and (table[column] > 0).all(), column
    assert (table["step_bare_q25"] <= table["step_bare_q75"]).all()
    assert np.allclose(table["added_ms"], table["step_ms"] - table["bare_ms"], atol=2e-3)
    assert np.allclose(table["added_ms_per_tap"] * table["taps"], table["added_ms"], atol=5e-3)
    assert (table.loc[table["model"] == "resnet18@32", "taps"] == 5).all()


@pytest.mark.slow
def test_breakdown_parts_add_up_to_the_step(tables):
    parts = tables["breakdown"]
    assert list(parts.columns) == [
        "model",
        "resolution",
        "batch_size",
        "taps",
        "repetitions",
        "floor_ms",
        "step_ms",
        "added_ms",
        "pooling_ms",
        "statistics_ms",
        "null_lookup_ms",
        "fsm_ms",
        "glue_ms",
    ]
    for column in ("statistics_ms", "null_lookup_ms", "fsm_ms"):
        assert (parts[column] > 0).all(), column
    total = parts[["pooling_ms", "statistics_ms", "null_lookup_ms", "fsm_ms", "glue_ms"]].sum(axis=1)
    assert np.allclose(total, parts["step_ms"] - parts["floor_ms"], atol=5e-3)
    assert np.allclose(parts["added_ms"], parts["step_ms"] - parts["floor_ms"], atol=2e-3)


@pytest.mark.slow
def test_calibration_cost_compares_fresh_processes(tables):
    cost = tables["calibration_cost"]
    assert list(cost["model"]) == ["cnn"] and list(cost["images"]) == [64] and list(cost["batch_size"]) == [32]
    for column in ("bare_images_per_s", "calibrate_images_per_s", "time_ratio", "bare_peak_mib", "calibrate_peak_mib"):
        assert np.isfinite(cost[column]).all() and (cost[column] > 0).all(), column
    row = cost.iloc[0]
    assert row["time_ratio"] == pytest.approx(row["bare_images_per_s"] / row["calibrate_images_per_s"], rel=1e-3)
    assert row["extra_mib"] == pytest.approx(row["calibrate_peak_mib"] - row["bare_peak_mib"], abs=1e-2)
    assert 100 < row["bare_peak_mib"] < 4000  # a whole interpreter with torch: a fresh process, not this one
    if Path("/proc/self/clear_refs").exists():
        assert row["peak_over"] == "arm"


def test_the_default_config_times_the_issue_models_and_the_targets_at_every_batch_size():
    settings = load_config_set("default").calibration.overhead
    assert set(settings.labels) == {
        "cnn",
        "resnet",
        "vit",
        "resnet18@224",
        "resnet18@32",
        "resnet50@224",
        "resnet50@32",
        "vit_small_patch16_224@224",
    }
    assert settings.batch_sizes == (1, 16, 64) and settings.min_repetitions >= 5
    sizes = {m.label: m.batch_sizes or settings.batch_sizes for m in settings.reference_models}
    assert sizes["resnet18@224"] == (1, 16, 64)  # the issue's CPU targets: ResNet-18 at 224, batch 1 and 64
    assert all(1 in s and 16 in s for s in sizes.values())
    assert settings.calibration_images >= 8 * max(settings.batch_sizes)  # the monitor's own advice
    assert settings.device == "cpu" and settings.warmup >= 1
