"""The calibration check's workflow entries, one per rule: the sigma contract, the monitor's overhead and memory.

Each entry takes the checked config set, the rule's named inputs and its named outputs, and checks those names
against the tuples declared beside it (:mod:`experiments.rule_io`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from experiments.atomic import write_csv
from experiments.calibration_check.bench_models import ModelRecipe
from experiments.calibration_check.calibration_cost import calibration_cost_table
from experiments.calibration_check.contract import noise_check, summarise_counts, summarise_noise
from experiments.calibration_check.figures import qq_figure, tail_figure
from experiments.calibration_check.grid_run import run_grid
from experiments.calibration_check.null_grid import grid_counts, null_grid
from experiments.calibration_check.overhead import machine_description, overhead_tables, resolve_device
from experiments.calibration_check.soak import SoakConfig, soak_table
from experiments.calibration_check.tail_summary import ACCEPTANCE_FACTOR, tail_table
from experiments.calibration_check.unet_pool import (
    heldout_images,
    last_checkpoint,
    trained_unet,
    unet_label,
    unet_tap_features,
)
from experiments.data import split_dataset
from experiments.features import torch_threads
from experiments.figures import save_figure, write_table
from experiments.models.zoo import load_model
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.calibration_check.config import OverheadConfig
    from experiments.workflow_config import WorkflowConfig

MODEL_INPUTS = ("weights",)
CONTRACT_OUTPUTS = ("drift", "counts", "qq", "contract", "tail", "sizes", "tail_figure", "noise")
UNET_CONTRACT_INPUTS = ("manifest",)
UNET_CONTRACT_OUTPUTS = ("counts", "contract", "tail")
OVERHEAD_OUTPUTS = ("overhead", "breakdown", "calibration_cost")
SOAK_INPUTS: tuple[str, ...] = ()
SOAK_OUTPUTS = ("memory", "trace")


def contract(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``calibration_contract``: the clean-drift grid of every configured model (splits x batch sizes x many
    batches, plus a calibration-size sweep) and the noise check; raw QQ sample, counts, QQ figure and tables."""
    out = output_paths(outputs, CONTRACT_OUTPUTS, "calibration_contract")
    settings = cfg.calibration.contract
    models, calib, heldout = _load_models(cfg, inputs, cfg.calibration.models, "calibration_contract")
    grid = run_grid(models, {k: _pool(calib[k], heldout[k]) for k in models}, cfg.data.n_calib, settings)
    noise = noise_check(models, calib, heldout, settings)
    write_csv(pd.concat([grid.qq_sample.assign(condition="clean"), noise.assign(condition="noise")]), out["drift"])
    write_csv(grid.counts, out["counts"])
    save_figure(qq_figure(grid.qq_sample), out["qq"])
    table = summarise_counts(grid.counts.query("n_calib == @cfg.data.n_calib"))
    splits = f"{settings.splits} calibration split(s) of {cfg.data.n_calib} images"
    write_table(
        table,
        out["contract"],
        caption=f"Clean held-out drift per tap and batch size, pooled over {splits} (contract: |mean| <= 0.5, "
        "0.6 <= sd <= 1.6, at most 1% above 3; share_above_* are shares of batches).",
    )
    tail = tail_table(grid.main)
    write_table(
        tail,
        out["tail"],
        caption=f"Clean exceedance of 2, 3 and 3.5 sigma as a multiple of the normal tail, all taps pooled, over "
        f"{splits}; 95% intervals from a two-stage bootstrap (splits, then batches). passes: the upper end at 3 "
        f"sigma is within {ACCEPTANCE_FACTOR:g}x nominal.",
    )
    sizes = tail_table(grid.sizes, by=("model", "n_calib", "batch_size")) if grid.sizes else _no_sweep()
    write_table(
        sizes,
        out["sizes"],
        caption="Calibration-size sweep: clean drift (mean offset, sd) and exceedance multiples by calibration "
        f"size n_calib and batch size, all taps pooled, over {settings.splits} split(s) per size.",
    )
    save_figure(tail_figure(tail, sizes), out["tail_figure"])
    write_table(
        summarise_noise(noise),
        out["noise"],
        caption=f"Drift under Gaussian pixel noise (std {settings.noise_std}) at batch {settings.noise_batch_size}.",
    )
    return table


def unet_contract(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``calibration_contract_unet``: the clean-drift grid of a trained U-Net's blocks at fixed timesteps,
    each timestep a row of the contract like a model (same splits, batch sizes and batch counts)."""
    given = checked(inputs, UNET_CONTRACT_INPUTS, "input", "calibration_contract_unet")
    out = output_paths(outputs, UNET_CONTRACT_OUTPUTS, "calibration_contract_unet")
    settings, unet = cfg.calibration.contract, cfg.calibration.unet_contract
    manifest = json.loads(Path(given["manifest"]).read_text())
    model, scheduler = trained_unet(cfg.diffusion, last_checkpoint(manifest))
    images = heldout_images(cfg.diffusion, unet.n_pool)
    cells, taps_by_label = [], {}
    for t in unet.timesteps:
        label = unet_label(t)
        taps = taps_by_label[label] = unet_tap_features(model, scheduler, images, t, settings.seed)
        with torch_threads(1):  # many tiny scoring calls: a second thread costs more than it saves
            cells += null_grid(
                taps,
                label,
                n_calib=unet.n_calib,
                splits=settings.splits,
                batch_sizes=settings.batch_sizes,
                n_batches=settings.n_batches,
                seed=settings.seed,
            )
    counts = grid_counts(cells, taps_by_label)
    write_csv(counts, out["counts"])
    run = f"N{unet.n_train}_s{unet.seed}"
    write_table(
        summarise_counts(counts),
        out["contract"],
        caption=f"Clean held-out drift per U-Net block, timestep and batch size (run {run}, last EMA checkpoint), "
        f"pooled over {settings.splits} calibration split(s) of {unet.n_calib} images (contract: |mean| <= 0.5, "
        "0.6 <= sd <= 1.6, at most 1% above 3; share_above_* are shares of batches).",
    )
    tail = tail_table(cells)
    write_table(
        tail,
        out["tail"],
        caption=f"Clean exceedance of 2, 3 and 3.5 sigma on the diffusion U-Net's blocks (run {run}, last EMA "
        f"checkpoint; held-out images noised to each timestep t), all blocks pooled, as a multiple of the normal tail "
        f"over {settings.splits} calibration split(s) of {unet.n_calib} images; 95% intervals from a two-stage "
        f"bootstrap (splits, then batches). passes: the upper end at 3 sigma is within {ACCEPTANCE_FACTOR:g}x nominal.",
    )
    return tail


def _pool(calib: TensorDataset, heldout: TensorDataset) -> torch.Tensor:
    """Every image of the configured calibration and held-out sets: the grid re-partitions them per split."""
    return torch.cat([calib.tensors[0], heldout.tensors[0]])


def _no_sweep() -> pd.DataFrame:
    return pd.DataFrame(columns=["model", "n_calib", "batch_size"])


def overhead(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> pd.DataFrame:
    """Rule ``overhead``: what watching and calibrating cost, against a bare forward pass and the no-op-hook floor.

    Study models are timed with their trained weights on their own images, reference architectures with random
    weights on smooth synthetic images; three tables: per-step cost, its breakdown, and calibration cost.
    """
    out = output_paths(outputs, OVERHEAD_OUTPUTS, "overhead")
    settings = cfg.calibration.overhead
    settings = replace(settings, device=resolve_device(settings.device))
    given = checked(inputs, MODEL_INPUTS, "input", "overhead")
    weights = by_model(given["weights"], settings.models, "overhead input 'weights'")
    recipes = [ModelRecipe.study(cfg.models[k], cfg.data, weights[k], settings.seed) for k in settings.models]
    recipes += [ModelRecipe.reference(m, settings.seed) for m in settings.reference_models]
    machine = machine_description(settings.device)
    table, breakdown = overhead_tables(recipes, settings)
    fast = "; fast: monitor.step with deepdrift.preset('fast')" if "fast_ms" in table else ""
    write_table(
        table,
        out["overhead"],
        caption=(
            "Per-step cost of monitoring, interleaved arms, median over repetitions (ms): bare = forward under "
            "no_grad; floor = forward with no-op hooks on the monitor's taps (the least any hook-based monitor "
            f"pays); step = monitor.step{fast}. Ratios are medians of per-repetition ratios (step_bare_q25/q75: "
            f"quartiles); added_ms = step - bare, also per tap. {_subjects(settings)} {machine}."
        ),
    )
    write_table(
        breakdown,
        out["breakdown"],
        caption=(
            "Where a step's time goes beyond the floor (medians, ms): pooling = hooked forward "
            "(LayerTaps.run) - floor; statistics = DriftScorer.statistics to host; null_lookup = "
            "scores_from_statistics; fsm = status and observers; glue = step - floor - the others (as measured, "
            f"may be slightly negative). {_subjects(settings)} {machine}."
        ),
    )
    chosen = [r for r in recipes if r.label in settings.calibration_cost.models]
    cost = calibration_cost_table(chosen, settings.calibration_cost, settings.device)
    write_table(
        cost,
        out["calibration_cost"],
        caption=(
            f"Calibration cost over {settings.calibration_cost.images} images in batches of "
            f"{settings.calibration_cost.batch_size}: images/s of DeepDriftMonitor(model).calibrate and of a bare "
            "forward over the same batches (after one warm-up batch), their time ratio, and peak resident memory "
            "(MiB) of each arm in its own fresh process; extra = calibrate peak - bare peak; peak_over: arm = "
            "the peak while the arm ran (Linux VmHWM reset after set-up), process = the lifetime peak (ru_maxrss). "
            f"{machine}."
        ),
    )
    return table


def _subjects(settings: OverheadConfig) -> str:
    """What the models and the repetitions column are, for the captions."""
    return (
        "Study models run their trained weights on held-out images, name@resolution models random weights on smooth "
        f"synthetic images; every monitor calibrated on {settings.calibration_images} images. repetitions: "
        f"interleaved rounds timed after {settings.warmup} warm-up round(s), up to {settings.repetitions}, at least "
        f"{settings.min_repetitions} (a cell stops after {settings.max_seconds_per_cell:g} s)."
    )


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
