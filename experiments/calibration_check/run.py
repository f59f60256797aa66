"""Entry point of the calibration check for the workflow (and for `python -m`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.atomic import write_csv
from experiments.calibration_check.config import CalibrationStudyConfig
from experiments.calibration_check.contract import run_contract, summarise, summarise_noise
from experiments.calibration_check.figures import qq_figure
from experiments.calibration_check.overhead import overhead_table
from experiments.calibration_check.soak import SoakConfig, soak_table
from experiments.data import DataSpec, split_dataset
from experiments.figures import save_figure, write_table
from experiments.models.zoo import ModelSpec, load_model


def _load_models(model_cfgs: Mapping[str, Mapping[str, Any]], weights: Mapping[str, str], data: DataSpec):
    splits = data.splits()
    models, calib, heldout = {}, {}, {}
    for key, path in weights.items():
        spec = ModelSpec.from_config(key, model_cfgs[key])
        models[key] = load_model(spec, data, path)
        calib[key] = split_dataset(data, "test", splits.calib, spec.in_chans)
        heldout[key] = split_dataset(data, "test", splits.heldout, spec.in_chans)
    return models, calib, heldout


def overhead_check(
    model_cfgs: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, str],
    data_cfg: Mapping[str, Any],
    study_cfg: Mapping[str, Any],
    table_stem: str | Path,
) -> pd.DataFrame:
    """Time monitor.step against a plain forward pass for every model in ``weights``; write the table.

    Args:
        study_cfg: the ``calibration`` section (its ``overhead`` part sets batch sizes and repetitions).
    """
    cfg = CalibrationStudyConfig.from_config(study_cfg).overhead
    models, calib, heldout = _load_models(model_cfgs, weights, DataSpec.from_config(data_cfg))
    table = overhead_table(
        models,
        {k: v.tensors[0] for k, v in calib.items()},
        {k: v.tensors[0] for k, v in heldout.items()},
        cfg,
    )
    write_table(
        table,
        table_stem,
        float_format="%.2f",
        caption="Cost of monitor.step relative to a plain forward pass (median of interleaved repetitions).",
    )
    return table


def calibration_check(
    model_cfgs: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, str],
    data_cfg: Mapping[str, Any],
    study_cfg: Mapping[str, Any],
    out_drift: str | Path,
    figure_stem: str | Path,
    table_stem: str | Path,
    noise_table_stem: str | Path,
) -> pd.DataFrame:
    """Run the contract on the models in ``weights``; write the raw drift, the QQ figure and both tables.

    Args:
        study_cfg: the ``calibration`` section (its ``contract`` part sets batch sizes, batch counts and noise).
    """
    cfg = CalibrationStudyConfig.from_config(study_cfg).contract
    models, calib, heldout = _load_models(model_cfgs, weights, DataSpec.from_config(data_cfg))
    clean, noise = run_contract(models, calib, heldout, cfg)
    write_csv(pd.concat([clean.assign(condition="clean"), noise.assign(condition="noise")]), out_drift)
    save_figure(qq_figure(clean), figure_stem)
    table = summarise(clean)
    write_table(
        table,
        table_stem,
        caption="Clean held-out drift per tap and batch size (contract: |mean| <= 0.5, "
        "0.6 <= sd <= 1.6, at most 1% above 3).",
    )
    write_table(
        summarise_noise(noise),
        noise_table_stem,
        caption=f"Drift under Gaussian pixel noise (std {cfg.noise_std}) at batch {cfg.noise_batch_size}.",
    )
    return table


def soak_check(study_cfg: Mapping[str, Any], table_stem: str | Path, trace_csv: str | Path) -> pd.DataFrame:
    """Run the memory soak with the default bounds and unbounded; write the summary table and the RSS trace."""
    settings = CalibrationStudyConfig.from_config(study_cfg).soak
    summary, trace = soak_table(SoakConfig(steps=settings.steps, samples=settings.samples))
    write_csv(trace, trace_csv)
    write_table(
        summary,
        table_stem,
        float_format="%.2f",
        caption=(
            "Resident memory of a monitor stepping a small MLP for a long stream with alerts and ever-new batch "
            "sizes: with the default bounds (history and alert log 10,000 entries, 8 cached null fits) and with "
            "history_size=None. Growth is measured over the second half of the stream."
        ),
    )
    return summary
