"""Which failure mode does the doctor name for each corruption family (noise, blur, weather, digital)?

There is no ground truth here: a corruption is an input change, so "SENSOR_FAILURE" is the literal answer, but a
blur or a contrast change may leave the first taps' channel means almost unchanged and only show deeper. The table
reports what the doctor says, per family and corruption, at batch 16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from deepdrift import DriftScorer, Tap
from experiments.data.study_images import StudyImages
from experiments.features import extract_features, torch_threads
from experiments.localisation.evaluate import diagnose_batches
from experiments.localisation.summary import MODES


def corruption_modes(
    model: nn.Module,
    model_key: str,
    scorer: DriftScorer,
    taps: Sequence[Tap],
    images: StudyImages,
    names: Mapping[str, Sequence[str]],
    severity: int,
    n_images: int,
    batch_size: int,
    seed: int,
    cache_dir: str | Path | None,
) -> pd.DataFrame:
    """Per corruption: the doctor's verdict on every batch (long format)."""
    rows = []
    for family, corruptions in names.items():
        for name in corruptions:
            x = images.corrupted(name, severity, n_images, seed, cache_dir)
            feats = extract_features(model, x, [t.name for t in taps])
            with torch_threads(1):
                verdicts = diagnose_batches(scorer, taps, feats, batch_size, n_images // batch_size)
            for row in verdicts:
                onset = row["onset_pred"]
                rows.append(
                    {
                        "model": model_key,
                        "family": family,
                        "corruption": name,
                        "severity": severity,
                        "onset_zone": taps[onset].zone if onset >= 0 else "-",
                        **row,
                    }
                )
    return pd.DataFrame(rows)


def corruption_mode_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Share of batches per diagnosed mode, per model, family and corruption, plus the commonest onset zone."""
    keys = ["model", "family", "corruption"]
    share = pd.crosstab([rows[k] for k in keys], rows["mode"], normalize="index")
    share = share.reindex(columns=MODES, fill_value=0.0)
    zone = rows.groupby(keys)["onset_zone"].agg(lambda z: z.value_counts().index[0]).rename("top_onset_zone")
    table = share.join(zone).reset_index().rename_axis(columns=None)
    order = {f: i for i, f in enumerate(dict.fromkeys(rows["family"]))}
    return table.sort_values(
        ["model", "family"], key=lambda s: s.map(order) if s.name == "family" else s, kind="stable"
    )
