"""The default monitor's acceptance checks on real data: quiet on clean streams, quick on a clear corruption, and a
WARNING before the ALERT on a slow ramp.

Each check names its target beside the measured value, so the table reads as pass/fail without this code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepdrift import DeepDriftMonitor
from experiments.streams.bank import FeatureBank
from experiments.streams.config import StreamStudyConfig
from experiments.streams.detectors import run_monitor
from experiments.streams.generate import change_stream, clean_stream
from experiments.streams.metrics import detection_delay

CHECK_SEED = 10_000_000
"""Stream seeds of the checks, far from those of the benchmark's streams."""


def _row(model: str, check: str, target: str, value: object) -> dict[str, object]:
    return {"model": model, "check": check, "target": target, "value": value}


def monitor_acceptance(
    monitor: DeepDriftMonitor, bank: FeatureBank, cfg: StreamStudyConfig, model: str
) -> pd.DataFrame:
    """One row per check: the check, its target and the value measured with ``monitor`` (default thresholds)."""
    pools, b = bank.pools, cfg.batch_size
    trace = run_monitor(monitor, bank, clean_stream(pools, 1000, b, seed=CHECK_SEED + cfg.seed))
    rows = [
        _row(model, "1000 clean batches: ALERT events over all layers", "<= 1", trace.layer_alerts),
        _row(model, "1000 clean batches: WARNING events over all layers", "<= 5", trace.layer_warnings),
    ]
    name, severity = cfg.strong.corruption, cfg.strong.severity
    strong = [
        change_stream(pools, "sudden", name, [severity], cfg.pre, cfg.post, cfg.ramp, b, CHECK_SEED + 100 + r)
        for r in range(cfg.repeats)
    ]
    delays = [detection_delay(run_monitor(monitor, bank, s).alert, s.change) for s in strong]
    worst = float(np.max(np.nan_to_num(delays, nan=np.inf)))
    rows.append(_row(model, f"{name} s{severity} (sudden): batches to first ALERT, worst of {cfg.repeats}", "<= 3",
                     worst))  # fmt: skip
    warned = []
    for r in range(cfg.repeats):
        stream = change_stream(
            pools, "share_ramp", cfg.corruptions[0], [cfg.ramp_severity], cfg.pre, cfg.post, cfg.slow_ramp, b,
            CHECK_SEED + 200 + r,
        )  # fmt: skip
        t = run_monitor(monitor, bank, stream)
        first_warn = np.flatnonzero(t.warning[stream.change :])
        first_alert = np.flatnonzero(t.alert[stream.change :])
        warned.append(bool(first_warn.size and (not first_alert.size or first_warn[0] < first_alert[0])))
    check = (
        f"slow ramp ({cfg.corruptions[0]} s{cfg.ramp_severity}, share 0->100% over {cfg.slow_ramp} batches): "
        "WARNING before ALERT"
    )
    rows.append(_row(model, check, "yes", f"{sum(warned)}/{len(warned)}"))
    return pd.DataFrame(rows)
