"""The calibration check's workflow entries, one per rule: the sigma contract, the monitor's overhead and memory.

Each entry takes the checked config set, the rule's named inputs and its named outputs, and checks those names
against the tuples declared beside it (:mod:`experiments.rule_io`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from torch import nn
from torch.utils.data import TensorDataset

from experiments.atomic import write_csv
from experiments.calibration_check.contract import run_contract, summarise, summarise_noise
from experiments.calibration_check.figures import qq_figure
from experiments.calibration_check.overhead import overhead_table
from experiments.calibration_check.soak import SoakConfig, soak_table
from experiments.data import split_dataset
from experiments.figures import save_figure, write_table
from experiments.models.zoo import load_model
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

MODEL_INPUTS = ("weights",)
CONTRACT_OUTPUTS = ("drift", "qq", "contract", "noise")
OVERHEAD_OUTPUTS = ("overhead",)
SOAK_INPUTS: tuple[str, ...] = ()
SOAK_OUTPUTS = ("memory", "trace")


def contract(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``calibration_contract``: clean and noisy drift of every configured model; raw drift, QQ figure, tables."""
    out = output_paths(outputs, CONTRACT_OUTPUTS, "calibration_contract")
    settings = cfg.calibration.contract
    models, calib, heldout = _load_models(cfg, inputs, cfg.calibration.models, "calibration_contract")
    clean, noise = run_contract(models, calib, heldout, settings)
    write_csv(pd.concat([clean.assign(condition="clean"), noise.assign(condition="noise")]), out["drift"])
    save_figure(qq_figure(clean), out["qq"])
    table = summarise(clean)
    write_table(
        table,
        out["contract"],
        caption="Clean held-out drift per tap and batch size (contract: |mean| <= 0.5, "
        "0.6 <= sd <= 1.6, at most 1% above 3).",
    )
    write_table(
        summarise_noise(noise),
        out["noise"],
        caption=f"Drift under Gaussian pixel noise (std {settings.noise_std}) at batch {settings.noise_batch_size}.",
    )
    return table


def overhead(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``overhead``: time ``monitor.step`` against a plain forward pass for every configured model."""
    out = output_paths(outputs, OVERHEAD_OUTPUTS, "overhead")
    settings = cfg.calibration.overhead
    models, calib, heldout = _load_models(cfg, inputs, settings.models, "overhead")
    table = overhead_table(
        models,
        {k: v.tensors[0] for k, v in calib.items()},
        {k: v.tensors[0] for k, v in heldout.items()},
        settings,
    )
    write_table(
        table,
        out["overhead"],
        float_format="%.2f",
        caption="Cost of monitor.step relative to a plain forward pass (median of interleaved repetitions).",
    )
    return table


def soak(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``soak``: the memory of a long-running monitor with the default bounds and unbounded."""
    checked(inputs, SOAK_INPUTS, "input", "soak")
    out = output_paths(outputs, SOAK_OUTPUTS, "soak")
    settings = cfg.calibration.soak
    summary, trace = soak_table(SoakConfig(steps=settings.steps, samples=settings.samples))
    write_csv(trace, out["trace"])
    write_table(
        summary,
        out["memory"],
        float_format="%.2f",
        caption=(
            "Resident memory of a monitor stepping a small MLP for a long stream with alerts and ever-new batch "
            "sizes: with the default bounds (history and alert log 10,000 entries, 8 cached null fits) and with "
            "history_size=None. Growth is measured over the second half of the stream."
        ),
    )
    return summary


def _load_models(
    cfg: WorkflowConfig, inputs: Mapping[str, Files], keys: Sequence[str], where: str
) -> tuple[dict[str, nn.Module], dict[str, TensorDataset], dict[str, TensorDataset]]:
    """Trained models, calibration and held-out splits per model (channel counts may differ)."""
    given = checked(inputs, MODEL_INPUTS, "input", where)
    splits = cfg.data.splits()
    models, calib, heldout = {}, {}, {}
    for key, path in by_model(given["weights"], keys, f"{where} input 'weights'").items():
        spec = cfg.models[key]
        models[key] = load_model(spec, cfg.data, Path(path))
        calib[key] = split_dataset(cfg.data, "test", splits.calib, spec.in_chans)
        heldout[key] = split_dataset(cfg.data, "test", splits.heldout, spec.in_chans)
    return models, calib, heldout
