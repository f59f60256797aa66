"""The calibration check's workflow entries, one per rule: the sigma contract, the monitor's overhead and memory.

Each entry takes the checked config set, the rule's named inputs and its named outputs, and checks those names
against the tuples declared beside it (:mod:`experiments.rule_io`).
"""

from __future__ import annotations

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
from experiments.calibration_check.contract import noise_check, summarise_noise
from experiments.calibration_check.figures import qq_figure, tail_figure
from experiments.calibration_check.grid_run import run_grid
from experiments.calibration_check.overhead import machine_description, overhead_tables, resolve_device
from experiments.calibration_check.soak import SoakConfig, soak_table
from experiments.data import split_dataset
from experiments.figures import save_figure, write_table
from experiments.models.zoo import load_model
from experiments.null_grid import summarise_counts
from experiments.null_tail import ACCEPTANCE_FACTOR, tail_table
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.calibration_check.config import OverheadConfig
    from experiments.workflow_config import WorkflowConfig

MODEL_INPUTS = ("weights",)
CONTRACT_OUTPUTS = ("drift", "counts", "qq", "contract", "tail", "sizes", "tail_figure", "noise")
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
