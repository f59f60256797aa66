"""Entry point of the calibration check for the workflow (and for `python -m`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.calibration_check.contract import ContractConfig, run_contract, summarise, summarise_noise
from experiments.calibration_check.figures import qq_figure
from experiments.calibration_check.overhead import overhead_table
from experiments.data import fashion_mnist_dataset, make_splits
from experiments.figures import save_figure, write_table
from experiments.models.zoo import DataSpec, ModelSpec, load_model


def _load_models(model_cfgs: dict[str, dict], weights: dict[str, str], data: DataSpec):
    splits = make_splits(data.split_seed, data.n_calib, data.n_heldout, n_train=data.n_train)
    models, calib, heldout = {}, {}, {}
    for key, path in weights.items():
        spec = ModelSpec.from_config(key, model_cfgs[key])
        models[key] = load_model(spec, data, path)
        calib[key] = fashion_mnist_dataset("test", indices=splits.calib, size=data.img_size, channels=spec.in_chans)
        heldout[key] = fashion_mnist_dataset("test", indices=splits.heldout, size=data.img_size, channels=spec.in_chans)
    return models, calib, heldout


def overhead_check(
    model_cfgs: dict[str, dict], weights: dict[str, str], data_cfg: dict, overhead_cfg: dict, table_stem: str | Path
) -> pd.DataFrame:
    """Time monitor.step against a plain forward pass for every configured model; write the table."""
    models, calib, heldout = _load_models(model_cfgs, weights, DataSpec.from_config(data_cfg))
    table = overhead_table(
        models,
        {k: v.tensors[0] for k, v in calib.items()},
        {k: v.tensors[0] for k, v in heldout.items()},
        overhead_cfg["batch_sizes"],
        overhead_cfg["repetitions"],
    )
    write_table(
        table,
        table_stem,
        float_format="%.2f",
        caption="Cost of monitor.step relative to a plain forward pass (median of interleaved repetitions).",
    )
    return table


def calibration_check(
    model_cfgs: dict[str, dict],
    weights: dict[str, str],
    data_cfg: dict,
    check_cfg: dict,
    out_drift: str | Path,
    figure_stem: str | Path,
    table_stem: str | Path,
    noise_table_stem: str | Path,
) -> pd.DataFrame:
    """Run the contract on trained models and write the raw drift, the QQ figure and both tables."""
    models, calib, heldout = _load_models(model_cfgs, weights, DataSpec.from_config(data_cfg))
    cfg = ContractConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in check_cfg.items()})
    clean, noise = run_contract(models, calib, heldout, cfg)
    Path(out_drift).parent.mkdir(parents=True, exist_ok=True)
    pd.concat([clean.assign(condition="clean"), noise.assign(condition="noise")]).to_csv(out_drift, index=False)
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
