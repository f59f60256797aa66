"""The held-out-class shift as a stream through the library's own monitor: clean seen-class batches, then batches
of the classes the model never saw. Counts batches to the first ALERT after the change and ALERTs before it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deepdrift import AlertKind, DeepDriftMonitor, MonitorState
from experiments.mode_truth.config import ModeTruthConfig
from experiments.mode_truth.evaluate import Prepared
from experiments.mode_truth.perturbations import class_rows


def stream_batches(prep: Prepared, cfg: ModeTruthConfig, repeat: int) -> list[torch.Tensor]:
    """``stream_pre`` clean batches then ``stream_post`` held-out-class batches (each drawn without replacement)."""
    rng = np.random.default_rng([cfg.seed, repeat])
    b = cfg.stream_batch_size
    seen = rng.permutation(prep.seen_rows())
    unseen = rng.permutation(class_rows(prep.labels, prep.unseen, len(prep.labels)))
    if len(seen) < cfg.stream_pre * b or len(unseen) < cfg.stream_post * b:
        raise ValueError(
            f"a stream needs {cfg.stream_pre * b} seen and {cfg.stream_post * b} held-out-class pool images, the pool "
            f"has {len(seen)} and {len(unseen)}; raise mode_truth.n_pool or shorten the stream"
        )
    x = prep.images.heldout
    pre = [x[seen[i * b : (i + 1) * b]] for i in range(cfg.stream_pre)]
    return pre + [x[unseen[i * b : (i + 1) * b]] for i in range(cfg.stream_post)]


def run_streams(model_key: str, prep: Prepared, cfg: ModeTruthConfig) -> pd.DataFrame:
    """One row per stream: the first post-change batch with a layer in ALERT (1 = the first changed batch; NaN:
    never), the ALERT entries (events of any layer) before the change, and whether a layer was still in ALERT
    when the change came (its delay then counts a false alarm)."""
    if not prep.unseen:
        raise ValueError(f"streaming {model_key} needs held-out classes: give the model `classes`")
    monitor = DeepDriftMonitor(prep.model, layers=prep.names)
    monitor.calibrate(prep.calib.split(128), progress=False)
    rows = []
    for repeat in range(cfg.stream_repeats):
        monitor.reset()
        false_alerts, delay, in_alert = 0, np.nan, False
        for i, batch in enumerate(stream_batches(prep, cfg, repeat)):
            status, alerts = monitor.step(batch)
            if i < cfg.stream_pre:
                false_alerts += sum(a.kind == AlertKind.ALERT for a in alerts)
                in_alert = any(s.state == MonitorState.ALERT for s in status.values())
            elif any(s.state == MonitorState.ALERT for s in status.values()):
                delay = i - cfg.stream_pre + 1
                break
        rows.append(
            {"model": model_key, "stream": repeat, "pre": cfg.stream_pre, "post": cfg.stream_post,
             "batch_size": cfg.stream_batch_size, "delay": delay, "false_alerts": false_alerts,
             "alert_at_change": in_alert}
        )  # fmt: skip
    monitor.close()
    return pd.DataFrame(rows)
