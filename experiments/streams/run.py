"""Entry point of the streaming-detection benchmark for the workflow (and notebooks)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepdrift import LayerTaps, ObserverConfig
from experiments.atomic import write_csv
from experiments.data import DataSpec
from experiments.figures import save_figure, write_table
from experiments.localisation.data import study_images
from experiments.localisation.features import tap_order, torch_threads
from experiments.models.zoo import ModelSpec, load_model
from experiments.quiet import quiet_logger
from experiments.streams.bank import FeatureBank, build_bank
from experiments.streams.config import StreamStudyConfig
from experiments.streams.detectors import run_monitor
from experiments.streams.evaluate import deepdrift_rows, results_frame, river_rows, window_rows
from experiments.streams.figures import curves_figure, timeline_figure
from experiments.streams.generate import Stream, change_stream, clean_stream
from experiments.streams.metrics import detection_delay
from experiments.streams.replay import replay_monitor
from experiments.streams.summary import curves, deepdrift_table, matched

logger = logging.getLogger(__name__)


def make_streams(bank: FeatureBank, cfg: StreamStudyConfig) -> dict[str, list[Stream]]:
    """Clean tuning and test streams (disjoint seeds) and every change stream."""
    pools, b = bank.pools, cfg.batch_size
    seeds = iter(range(cfg.seed * 100_000, cfg.seed * 100_000 + 100_000))
    tune = [clean_stream(pools, cfg.clean_length, b, next(seeds)) for _ in range(cfg.clean_streams)]
    test = [clean_stream(pools, cfg.clean_length, b, next(seeds)) for _ in range(cfg.clean_streams)]
    change = []
    for name in cfg.corruptions:
        for _ in range(cfg.repeats):
            change += [
                change_stream(pools, "sudden", name, [s], cfg.pre, cfg.post, cfg.ramp, b, next(seeds))
                for s in cfg.sudden_severities
            ]
            change.append(
                change_stream(
                    pools, "share_ramp", name, [cfg.ramp_severity], cfg.pre, cfg.post, cfg.ramp, b, next(seeds)
                )
            )
            change.append(
                change_stream(
                    pools, "severity_ramp", name, list(cfg.severities), cfg.pre, cfg.post, cfg.ramp, b, next(seeds)
                )
            )
    return {"tune": tune, "test": test, "change": change}


def issue3_table(monitor, bank: FeatureBank, cfg: StreamStudyConfig, model: str) -> pd.DataFrame:
    """The monitor's acceptance numbers of issue 3, measured on real data with the default ObserverConfig."""
    pools, b, rows = bank.pools, cfg.batch_size, []
    trace = run_monitor(monitor, bank, clean_stream(pools, 1000, b, seed=10_000_000 + cfg.seed))
    rows.append(
        {
            "model": model,
            "check": "1000 clean batches: ALERT events over all layers",
            "target": "<= 1",
            "value": trace.layer_alerts,
        }
    )
    rows.append(
        {
            "model": model,
            "check": "1000 clean batches: WARNING events over all layers",
            "target": "<= 5",
            "value": trace.layer_warnings,
        }
    )
    name, severity = cfg.strong.corruption, cfg.strong.severity
    strong = [
        change_stream(pools, "sudden", name, [severity], cfg.pre, cfg.post, cfg.ramp, b, 10_000_100 + r)
        for r in range(cfg.repeats)
    ]
    delays = [detection_delay(run_monitor(monitor, bank, s).alert, s.change) for s in strong]
    rows.append(
        {
            "model": model,
            "check": f"{name} s{severity} (sudden): batches to first ALERT, worst of {cfg.repeats}",
            "target": "<= 3",
            "value": float(np.max(np.nan_to_num(delays, nan=np.inf))),
        }
    )
    warned = []
    for r in range(cfg.repeats):
        stream = change_stream(
            pools,
            "share_ramp",
            cfg.corruptions[0],
            [cfg.ramp_severity],
            cfg.pre,
            cfg.post,
            cfg.slow_ramp,
            b,
            10_000_200 + r,
        )
        t = run_monitor(monitor, bank, stream)
        first_warn = np.flatnonzero(t.warning[stream.change :])
        first_alert = np.flatnonzero(t.alert[stream.change :])
        warned.append(bool(first_warn.size and (not first_alert.size or first_warn[0] < first_alert[0])))
    rows.append(
        {
            "model": model,
            "check": f"slow ramp ({cfg.corruptions[0]} s{cfg.ramp_severity}, share 0->100% "
            f"over {cfg.slow_ramp} batches): WARNING before ALERT",
            "target": "yes",
            "value": f"{sum(warned)}/{len(warned)}",
        }
    )
    return pd.DataFrame(rows)


def run_model(
    key: str, model_cfg: Mapping[str, Any], weights: str, data: DataSpec, cfg: StreamStudyConfig, cache_dir: str | None
) -> dict[str, Any]:
    """Feature bank, streams, every detector at every setting, and the issue-3 checks for one model."""
    spec = ModelSpec.from_config(key, model_cfg)
    model = load_model(spec, data, weights)
    images = study_images(data, spec.in_chans, cfg.n_clean_pool, cfg.seed)
    names = tap_order(model, images.calib[:8])
    taps = LayerTaps(model, layers=names).taps
    bank = build_bank(model, taps, images, cfg.corruptions, cfg.severities, cfg.n_corrupt, cfg.seed, cache_dir)
    streams = make_streams(bank, cfg)
    logger.info(
        "%s: %d clean + %d change streams",
        key,
        sum(len(v) for k, v in streams.items() if k != "change"),
        len(streams["change"]),
    )
    with torch_threads(1), quiet_logger("deepdrift.monitor"):  # thousands of alerts by design: keep logs short
        monitor = replay_monitor(bank.widths, bank.labels, bank.calib_packed, ObserverConfig())
        rows = deepdrift_rows(monitor, bank, streams, cfg.theta_high)
        rows += river_rows(
            bank, streams, cfg.adwin_delta, cfg.ph_threshold, cfg.batch_size, cfg.warmup_batches, cfg.seed
        )
        rows += window_rows(bank, streams, cfg.window, cfg.n_reference, cfg.quantiles, cfg.seed)
        issue3 = issue3_table(monitor, bank, cfg, key)
        example = next(s for s in streams["change"] if s.kind == "share_ramp")
        run_monitor(monitor, bank, example)
    title = f"{key}: {example.corruption} s{example.severity}, share ramp over {cfg.ramp} batches"
    return {
        "runs": results_frame(rows, key),
        "issue3": issue3,
        "timeline": timeline_figure(monitor, example.change, title),
    }


def stream_benchmark(
    model_cfgs: Mapping[str, Mapping[str, Any]],
    weights: Mapping[str, str],
    data_cfg: Mapping[str, Any],
    study_cfg: Mapping[str, Any],
    out_runs: str | Path,
    stems: Mapping[str, str | Path],
    cache_dir: str | None = None,
) -> pd.DataFrame:
    """Run the streaming benchmark on every configured model; write raw runs, tables and figures.

    Args:
        stems: output stems for ``curves``, ``matched``, ``deepdrift``, ``issue3`` (tables) and ``timeline``,
            ``curves_figure`` (figures).
    """
    torch.manual_seed(0)
    data = DataSpec.from_config(data_cfg)
    cfg = StreamStudyConfig.from_config(study_cfg)
    results = {key: run_model(key, model_cfgs[key], path, data, cfg, cache_dir) for key, path in weights.items()}
    runs = pd.concat([r["runs"] for r in results.values()], ignore_index=True)
    write_csv(runs, out_runs)
    curve = curves(runs, cfg.post)
    write_table(
        _readable(curve),
        stems["curves"],
        caption="Every detector setting: false alarms per 1000 clean batches (tuning / test streams) "
        "and detection delay per stream kind (misses censored at the stream end).",
    )
    write_table(
        _readable(matched(runs, curve, cfg.budget)),
        stems["matched"],
        caption=f"Each detector at the most sensitive setting with at most {cfg.budget:g} false alarms "
        "per 1000 clean tuning batches.",
    )
    write_table(
        deepdrift_table(runs, 3.0),
        stems["deepdrift"],
        caption="Default DeepDrift monitor (theta_high 3): "
        "delay to the first model-level ALERT and lead of WARNING over ALERT.",
    )
    write_table(
        pd.concat([r["issue3"] for r in results.values()], ignore_index=True),
        stems["issue3"],
        caption="Issue-3 acceptance numbers on real data (default ObserverConfig, batch 16).",
    )
    first = next(iter(results))
    save_figure(results[first]["timeline"], stems["timeline"])
    for key, r in results.items():
        if key != first:
            import matplotlib.pyplot as plt

            plt.close(r["timeline"])
    save_figure(curves_figure(curve, cfg.budget), stems["curves_figure"])
    return curve


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    """Settings span 1e-10 (ADWIN delta) to 8 (theta_high): print them with significant digits, not 3 decimals."""
    return table.assign(setting=table["setting"].map(lambda v: f"{v:.4g}"))
