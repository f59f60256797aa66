"""The adapter contract: a rule's named inputs and outputs against the names each study entry declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.calibration_check import run as calibration
from experiments.corruption import run as corruption
from experiments.diffusion import contract as diffusion_contract
from experiments.diffusion import run as diffusion
from experiments.findings import run as findings
from experiments.localisation import run as localisation
from experiments.mode_truth import run as mode_truth
from experiments.replicates import run as replicates
from experiments.rule_io import RuleIOError, by_model, checked, output_paths
from experiments.streams import run as streams

ENTRIES = {
    "calibration_contract": (calibration.MODEL_INPUTS, calibration.CONTRACT_OUTPUTS),
    "calibration_contract_unet": (diffusion_contract.UNET_CONTRACT_INPUTS, diffusion_contract.UNET_CONTRACT_OUTPUTS),
    "overhead": (calibration.MODEL_INPUTS, calibration.OVERHEAD_OUTPUTS),
    "soak": (calibration.SOAK_INPUTS, calibration.SOAK_OUTPUTS),
    "corruption_images": (corruption.IMAGES_INPUTS, corruption.IMAGES_OUTPUTS),
    "corruption_measure": (corruption.MEASURE_INPUTS, corruption.MEASURE_OUTPUTS),
    "corruption_report": (corruption.REPORT_INPUTS, corruption.REPORT_OUTPUTS),
    "diffusion_train": (diffusion.TRAIN_INPUTS, diffusion.TRAIN_OUTPUTS),
    "diffusion_evaluate": (diffusion.EVALUATE_INPUTS, diffusion.EVALUATE_OUTPUTS),
    "diffusion_report": (diffusion.REPORT_INPUTS, diffusion.REPORT_OUTPUTS),
    "findings": (findings.INPUTS, findings.OUTPUTS),
    "fault_localisation": (localisation.INPUTS, localisation.OUTPUTS),
    "stream_detection": (streams.INPUTS, streams.OUTPUTS),
    "mode_truth": (mode_truth.INPUTS, mode_truth.OUTPUTS),
    "replicates": (replicates.INPUTS, replicates.OUTPUTS),
    "replicates_detection": (replicates.DETECTION_INPUTS, replicates.DETECTION_OUTPUTS),
}
"""Every study rule and the (inputs, outputs) its entry declares."""


def test_outputs_become_paths_and_stems() -> None:
    out = output_paths(
        {"runs": "r/runs.csv.gz", "table": ["f/t.csv", "f/t.md", "f/t.tex"], "figure": ("f/x.pdf", "f/x.png")},
        ("runs", "table", "figure"),
        "study",
    )
    assert out == {"runs": Path("r/runs.csv.gz"), "table": Path("f/t"), "figure": Path("f/x")}


def test_a_renamed_output_names_both_sides() -> None:
    with pytest.raises(RuleIOError, match=r"missing \['timeline'\], undeclared \['timelin'\]; renamed\? 'timelin'"):
        output_paths({"runs": "runs.csv", "timelin": ["t.pdf", "t.png"]}, ("runs", "timeline"), "streams")
    with pytest.raises(RuleIOError, match="share one stem"):
        output_paths({"figure": ["a.pdf", "b.png"]}, ("figure",), "study")
    with pytest.raises(RuleIOError, match="undeclared"):
        checked({"weights": [], "extra": "x"}, ("weights",), "input", "study")


def test_inputs_per_model_keep_the_study_order() -> None:
    assert by_model(["a.st", "b.st"], ("cnn", "vit"), "study") == {"cnn": Path("a.st"), "vit": Path("b.st")}
    assert by_model("a.st", ("cnn",), "study") == {"cnn": Path("a.st")}
    with pytest.raises(RuleIOError, match="1 files for 2 models"):
        by_model(["a.st"], ("cnn", "vit"), "study")


def test_every_rule_hands_its_study_exactly_the_declared_names(workflow_rules) -> None:
    for name, (inputs, outputs) in ENTRIES.items():
        rule = workflow_rules[name]
        assert list(rule.input.keys()) == list(inputs), name
        assert list(rule.output.keys()) == list(outputs), name
