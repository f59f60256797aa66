"""The mode-truth study: ground truth fixed by the perturbation's mechanism, the mechanism check, the tables, and
the rule's entry end to end on the test config (tiny untrained models, real Fashion-MNIST)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepdrift import FailureMode, LayerTaps
from experiments.atomic import write_safetensors
from experiments.config import ConfigError
from experiments.features import extract_features, tap_order
from experiments.mode_truth.config import ModeTruthConfig
from experiments.mode_truth.mechanism import growth_row, relative_change
from experiments.mode_truth.perturbations import (
    ALL_LAYERS,
    AMPLIFICATION,
    GLOBAL,
    HELD_OUT,
    MISMATCH,
    PRIOR,
    SENSOR,
    TRUE_MODE,
    Perturbation,
    class_shifts,
    first_weighted,
    mid_sites,
    perturbed_features,
    weight_perturbations,
)
from experiments.mode_truth.summary import auroc, recall_table, verdicts
from experiments.models import CifarResNet
from experiments.models.zoo import ModelSpec, build, restrict_classes
from experiments.workflow_config import load_config_set

CFG = ModeTruthConfig(
    models=("cnn",),
    stream_models=(),
    input={"blur": (1.0,)},
    first_layer={"weight_noise": (1.0,)},
    amplification_gains=(4.0,),
    amplification_depths=(0.5,),
    global_noise=(0.2,),
    global_draws=1,
    prior_sizes=(1, 2),
)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return CifarResNet(20, 10, 1).eval()


def test_the_true_mode_is_a_function_of_the_family_alone() -> None:
    assert TRUE_MODE[SENSOR] is FailureMode.SENSOR_FAILURE and TRUE_MODE[MISMATCH] is FailureMode.SPURIOUS_CORRELATION
    assert (
        TRUE_MODE[AMPLIFICATION] is FailureMode.GEOMETRIC_COLLAPSE and TRUE_MODE[GLOBAL] is FailureMode.GLOBAL_COLLAPSE
    )
    a = Perturbation(SENSOR, "input", "blur", 1.0, "input")
    assert (
        a.seed
        == Perturbation(SENSOR, "input", "blur", 1.0, "input").seed
        != Perturbation(SENSOR, "input", "blur", 2.0).seed
    )


def test_sites_first_layer_and_mid_depth(resnet: nn.Module) -> None:
    probe = torch.randn(4, 1, 32, 32)
    names = tap_order(resnet, probe)
    taps = LayerTaps(resnet, layers=names).taps
    assert first_weighted(resnet, names, probe) == "conv1"
    mid = mid_sites(resnet, taps, probe, (0.0, 0.5, 1.0))
    assert "conv1" not in mid and len(mid) == len(set(mid)) >= 2
    perts = weight_perturbations(CFG, resnet, taps, probe, in_chans=1)
    by_family = pd.Series([p.family for p in perts]).value_counts().to_dict()
    assert by_family == {SENSOR: 2, AMPLIFICATION: 1, GLOBAL: 1}


def test_class_shifts_groups_seen_and_unseen_classes() -> None:
    shifts = class_shifts(CFG, seen=(0, 1, 2, 3, 4), unseen=(8, 9))
    prior = [p.site for p in shifts if p.mechanism == PRIOR]
    held = [p.classes for p in shifts if p.mechanism == HELD_OUT]
    assert prior == ["0", "1", "2", "3", "4", "0+1", "2+3"]
    assert held == [(8,), (9,), (8, 9)]
    assert {p.family for p in shifts} == {MISMATCH}


def test_amplification_leaves_earlier_taps_untouched_and_global_reaches_every_tap(resnet: nn.Module) -> None:
    x = torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    names = tap_order(resnet, x[:4])
    taps = LayerTaps(resnet, layers=names).taps
    clean = extract_features(resnet, x, names)
    site = mid_sites(resnet, taps, x[:4], (0.5,))[0]
    amp = perturbed_features(resnet, Perturbation(AMPLIFICATION, "mid_scale", "scale", 4.0, site), x, names, 0.0, 1.0)
    change = relative_change(clean, amp, taps)
    row = growth_row(change)
    assert row["first_reached"] > 0 and np.all(change[: row["first_reached"]] == 0.0)
    noisy = perturbed_features(resnet, Perturbation(GLOBAL, ALL_LAYERS, "weight_noise", 0.2, "all"), x, names, 0.0, 1.0)
    assert np.all(relative_change(clean, noisy, taps) > 0)
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())  # the clean model is never edited


def test_recall_counts_undetected_batches_as_wrong_and_intervals_cover() -> None:
    instances = pd.DataFrame(
        {"model": "m", "instance_id": ["a", "b", "c"], "family": [SENSOR, SENSOR, "clean"], "mechanism": "x"}
    )
    modes = (
        ["SENSOR_FAILURE"] * 3
        + ["STABLE"]
        + ["SENSOR_FAILURE", "GLOBAL_COLLAPSE"] * 2
        + ["STABLE"] * 9
        + ["SENSOR_FAILURE"]
    )
    batches = pd.DataFrame(
        {"model": "m", "instance_id": ["a"] * 4 + ["b"] * 4 + ["c"] * 10, "batch_size": 16, "batch": 0,
         "mode": modes, "onset_pred": [0] * 18, "score": 1.0}
    )  # fmt: skip
    labels = pd.DataFrame({"model": ["m"], "tap": [0], "label": ["UV"]})
    table = recall_table(verdicts(batches, instances, labels)).set_index(["model", "family"])
    sensor = table.loc[("m", SENSOR)]
    assert sensor["recall"] == pytest.approx(5 / 8) and sensor["top_other"] == "GLOBAL_COLLAPSE"
    assert sensor["recall_low"] <= 5 / 8 <= sensor["recall_high"]
    assert table.loc[("m", "clean"), "false_diagnoses"] == pytest.approx(0.1)


def test_auroc_orientation() -> None:
    value, low, high = auroc(np.zeros(20), np.ones(10))
    assert value == low == high == 1.0
    assert auroc(np.ones(20), np.zeros(10))[0] == 0.0  # never flipped


def test_classes_option_relabels_and_checks() -> None:
    ds = TensorDataset(torch.arange(5.0)[:, None], torch.tensor([7, 0, 9, 1, 0]))
    kept = restrict_classes(ds, (0, 1, 7))
    assert kept.tensors[1].tolist() == [2, 0, 1, 0] and kept.tensors[0][:, 0].tolist() == [0.0, 1.0, 3.0, 4.0]
    with pytest.raises(ConfigError, match="num_classes"):
        ModelSpec.from_config("x", {"arch": "small_cnn", "classes": [0, 1]})


def test_config_rejects_a_gain_that_does_not_amplify() -> None:
    with pytest.raises(ValueError, match="exceed 1"):
        ModeTruthConfig(models=("cnn",), stream_models=(), input={}, first_layer={}, amplification_gains=(0.5,))


def test_the_rule_entry_end_to_end(tmp_path) -> None:
    from experiments.mode_truth.run import OUTPUTS, run

    cfg = load_config_set("test")
    weights = []
    for key in cfg.mode_truth.models:
        path = tmp_path / f"{key}.safetensors"
        model = build(cfg.models[key], cfg.data)
        write_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, path, {"arch": "small_cnn"})
        weights.append(str(path))
    outputs = {name: str(tmp_path / f"{name}.csv") for name in OUTPUTS[:3]}
    outputs |= {name: [str(tmp_path / f"{name}.{ext}") for ext in ("csv", "md", "tex")] for name in OUTPUTS[3:9]}
    outputs |= {name: [str(tmp_path / f"{name}.{ext}") for ext in ("pdf", "png")] for name in OUTPUTS[9:]}
    recall = run(cfg, {"weights": weights}, outputs)
    families = set(recall.loc[recall["model"] == "cnn8", "family"])
    assert families == {SENSOR, MISMATCH, AMPLIFICATION, GLOBAL, "clean"}
    verdict = pd.read_csv(tmp_path / "verdicts.csv")
    assert set(verdict.loc[verdict["model"] == "cnn", "mechanism"]) >= {"input", "first_layer", PRIOR, "clean"}
    assert HELD_OUT in set(verdict.loc[verdict["model"] == "cnn8", "mechanism"])
    assert HELD_OUT not in set(verdict.loc[verdict["model"] == "cnn", "mechanism"])  # a 10-class model has none
    streams = pd.read_csv(tmp_path / "streams.csv")
    assert len(streams) == cfg.mode_truth.stream_repeats and (streams["model"] == "cnn8").all()
    assert (tmp_path / "modes_figure.png").stat().st_size > 0


def _recall(recalls: dict[str, tuple[float, float, str, float]]) -> pd.DataFrame:
    rows = []
    for model in ("cnn", "all"):
        for family, (value, low, other, share) in recalls.items():
            rows.append(
                {"model": model, "batch_size": 16, "family": family, "true_mode": TRUE_MODE[family].value,
                 "instances": 5, "batches": 80, "recall": value, "recall_low": low, "recall_high": min(1, value + 0.05),
                 "detected": 1.0, "detected_low": 1.0, "detected_high": 1.0, "top_other": other,
                 "top_other_share": share}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_claim_3_reads_the_independent_recall_and_names_merged_modes() -> None:
    from experiments.findings.claims import mode_diagnosis
    from experiments.findings.finding import Verdict

    faults = pd.DataFrame({"kind": ["input"], "onset_zone": ["UV"], "expected_mode": ["SENSOR_FAILURE"]})
    good = _recall({f: (0.97, 0.93, "STABLE", 0.03) for f in (SENSOR, MISMATCH, AMPLIFICATION, GLOBAL)})
    finding = mode_diagnosis(pd.DataFrame(), pd.DataFrame(), faults, good)
    assert finding.verdict is Verdict.SUPPORTED and "zone rule" in finding.why
    mixed = _recall(
        {SENSOR: (0.95, 0.91, "STABLE", 0.05), MISMATCH: (0.2, 0.1, "GEOMETRIC_COLLAPSE", 0.5),
         AMPLIFICATION: (0.3, 0.1, "SPURIOUS_CORRELATION", 0.6), GLOBAL: (0.0, 0.0, "SENSOR_FAILURE", 1.0)}
    )  # fmt: skip
    finding = mode_diagnosis(pd.DataFrame(), pd.DataFrame(), faults, mixed)
    assert finding.verdict is Verdict.PARTLY
    assert "sensor, global are each most often diagnosed SENSOR_FAILURE" in finding.why
    none = mixed.assign(recall_low=0.0)
    assert mode_diagnosis(pd.DataFrame(), pd.DataFrame(), faults, none).verdict is Verdict.NOT_SUPPORTED
