"""Score faulted models with the doctor, batch by batch, against the known location of the fault.

Expected failure modes (the mapping the doctor is judged against; it follows the doctor's own rules, since the
doctor cannot tell *why* a zone's features changed, only *where* they first changed):

* input/sensor faults -> ``SENSOR_FAILURE`` (onset at the first tap);
* internal faults -> by the zone of the ground-truth onset tap: UV -> ``SENSOR_FAILURE`` (a fault in the first
  layers is indistinguishable from a changed input), Mid -> ``SPURIOUS_CORRELATION``, Deep/IR ->
  ``GEOMETRIC_COLLAPSE``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from deepdrift import DoctorConfig, DriftScorer, FailureMode, Tap, diagnose_drift, log_level
from experiments.features import FeatureSet, extract_features, torch_threads
from experiments.localisation.faults import fault_seed, input_fault, internal_fault
from experiments.localisation.peers import DOCTOR, FIRST_TAP, PeerLocaliser, consecutive_batches
from experiments.localisation.sites import FaultSite, pre_onset_change

logger = logging.getLogger(__name__)

EXPECTED_BY_ZONE = {
    "UV": FailureMode.SENSOR_FAILURE,
    "Mid": FailureMode.SPURIOUS_CORRELATION,
    "Deep": FailureMode.GEOMETRIC_COLLAPSE,
    "IR": FailureMode.GEOMETRIC_COLLAPSE,
}


DEVELOPMENT, HELDOUT, CONTROL = "development", "held-out", "control"
"""Fault sets: the development set the design was tuned on, the held-out set drawn after it was frozen, and the
clean control batches."""


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``site`` is None for input faults (onset: the first tap).

    ``salt`` 0 (the development set) seeds the fault's random draws from its id alone, exactly as before the
    held-out set existed; a held-out fault salts them, so the same family and strength draw new masks, noise,
    channels, weights and bits.
    """

    kind: str  # "input", "internal" or "none" (the clean model, for the false-diagnosis rate)
    family: str
    strength: float
    site: FaultSite | None = None
    fault_set: str = DEVELOPMENT
    salt: int = 0

    @property
    def seed(self) -> int:
        return fault_seed(self.fault_id) if self.salt == 0 else fault_seed(self.fault_set, self.salt, self.fault_id)

    @property
    def module(self) -> str:
        return self.site.module if self.site is not None else ("input" if self.kind == "input" else "-")

    @property
    def onset(self) -> int | None:
        if self.kind == "none":
            return None
        return self.site.onset if self.site is not None else 0

    @property
    def fault_id(self) -> str:
        return f"{self.kind}:{self.family}@{self.module}:{self.strength:g}"


def expected_mode(fault: Fault, taps: Sequence[Tap]) -> FailureMode:
    """The failure mode a correct doctor names for ``fault`` (see the module docstring)."""
    if fault.kind == "none":
        return FailureMode.STABLE
    if fault.kind == "input":
        return FailureMode.SENSOR_FAILURE
    return EXPECTED_BY_ZONE[taps[fault.onset].zone]


def faulted_features(
    model: nn.Module,
    fault: Fault,
    images: torch.Tensor,
    taps: Sequence[Tap],
    mean: float,
    std: float,
    probe: torch.Tensor,
) -> FeatureSet:
    """Features and logits of the faulted model (the clean model itself is never modified)."""
    names = [t.name for t in taps]
    seed = fault.seed
    if fault.kind == "input":
        images = input_fault(fault.family, fault.strength, mean, std, seed)(images)
    elif fault.kind == "internal":
        model = internal_fault(model, fault.module, fault.family, fault.strength, seed, probe=probe)
    return extract_features(model, images, names)


def fit_scorer(calib: FeatureSet, n_null_draws: int = 4000) -> DriftScorer:
    """A drift scorer calibrated on clean calibration features (the same statistics a monitor would learn)."""
    return DriftScorer(n_null_draws=n_null_draws).fit_features([calib.taps])


def diagnose_batches(
    scorer: DriftScorer,
    taps: Sequence[Tap],
    feats: FeatureSet,
    batch_size: int,
    n_batches: int,
    doctor: DoctorConfig = DoctorConfig(),
) -> list[dict]:
    """Doctor's verdict on consecutive batches of the (pre-shuffled) images."""
    rows = []
    for b in range(min(n_batches, len(feats) // batch_size)):
        scores = scorer.score_features(feats.subset(np.arange(b * batch_size, (b + 1) * batch_size)).taps)
        profile = {
            t.name: {"drift": s.drift, "p_value": s.p_value, "depth": t.depth, "zone": t.zone}
            for t, s in zip(taps, scores.values(), strict=True)
        }
        diagnosis = diagnose_drift(profile, doctor)
        rows.append(
            {
                "batch_size": batch_size,
                "batch": b,
                "mode": diagnosis.mode.value,
                "onset_pred": -1 if diagnosis.onset_index is None else diagnosis.onset_index,
                "profile": ";".join(f"{s.drift:.3f}" for s in scores.values()),
                "p_values": ";".join(f"{s.p_value:.4g}" for s in scores.values()),
            }
        )
    return rows


def evaluate_faults(
    model: nn.Module,
    model_key: str,
    faults: Sequence[Fault],
    scorer: DriftScorer,
    taps: Sequence[Tap],
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_sizes: Sequence[int],
    n_batches: Sequence[int],
    mean: float,
    std: float,
    probe: torch.Tensor,
    peers: Sequence[PeerLocaliser] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Run every fault; return per-batch verdicts, per-fault facts, and each faulted model's predictions.

    Every batch gets the doctor's verdict (``localiser`` "doctor"), the always-first-tap localiser's, and each
    peer's where the peer is defined at the batch size.
    """
    clean = extract_features(model, images, [t.name for t in taps])
    clean_pred = clean.logits.argmax(dim=1)
    clean_acc = float((clean_pred == labels).float().mean())
    batch_rows, fault_rows, predictions = [], [], []
    with log_level("ERROR"):  # bit flips: one NaN warning per tap and batch, by design
        for fault in tqdm(faults, desc=f"faults {model_key}", disable=None, leave=False):
            # the unfaulted model: the same features, without a second forward pass
            feats = clean if fault.kind == "none" else faulted_features(model, fault, images, taps, mean, std, probe)
            pred = feats.logits.argmax(dim=1)
            predictions.append(pred.numpy().astype(np.int16))
            onset = fault.onset
            expected = expected_mode(fault, taps)
            fault_rows.append(
                {
                    "model": model_key,
                    "fault_set": fault.fault_set,
                    "fault_id": fault.fault_id,
                    "kind": fault.kind,
                    "family": fault.family,
                    "module": fault.module,
                    "strength": fault.strength,
                    "onset_true": -1 if onset is None else onset,
                    "onset_zone": "-" if onset is None else taps[onset].zone,
                    "expected_mode": expected.value,
                    "clean_accuracy": clean_acc,
                    "accuracy": float((pred == labels).float().mean()),
                    "agreement": float((pred == clean_pred).float().mean()),
                    "pre_onset_max_change": pre_onset_change(clean, feats, onset) if onset else 0.0,
                }
            )
            key = {"model": model_key, "fault_set": fault.fault_set, "fault_id": fault.fault_id}
            with torch_threads(1):
                for batch_size, n in zip(batch_sizes, n_batches, strict=True):
                    for row in diagnose_batches(scorer, taps, feats, batch_size, n):
                        batch_rows.append({**key, "localiser": DOCTOR, **row})
                    batch_rows += _other_localisers(key, peers, feats, batch_size, n)
    faults_df = pd.DataFrame(fault_rows)
    faults_df["accuracy_drop"] = 100.0 * (faults_df["clean_accuracy"] - faults_df["accuracy"])
    return pd.DataFrame(batch_rows), faults_df, np.stack(predictions)


def _other_localisers(
    key: dict[str, str], peers: Sequence[PeerLocaliser], feats: FeatureSet, batch_size: int, n_batches: int
) -> list[dict]:
    """Verdict rows of always-first-tap and of every peer defined at ``batch_size`` (no mode: they name none)."""
    batches = consecutive_batches(len(feats), batch_size, n_batches)
    onsets = {FIRST_TAP: np.zeros(len(batches), dtype=int)}
    onsets |= {p.name: p.onsets(feats, batches) for p in peers if p.defined(batch_size)}
    return [
        {**key, "localiser": name, "batch_size": batch_size, "batch": b, "mode": "", "onset_pred": int(onset)}
        for name, found in onsets.items()
        for b, onset in enumerate(found)
    ]


def score_batches(batches: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """Join verdicts with the truth: detected, exact / within-one onset, and mode correctness per batch.

    A batch is "detected" when the localiser names an onset tap (the doctor: any mode but STABLE). Mode
    correctness is NaN for localisers that name no mode.
    """
    keys = [k for k in ("model", "fault_set", "fault_id") if k in batches.columns and k in faults.columns]
    df = batches.merge(faults, on=keys, how="left", validate="many_to_one")
    if "localiser" not in df.columns:
        df["localiser"] = DOCTOR
    df["detected"] = df["onset_pred"] >= 0
    df["onset_exact"] = df["detected"] & (df["onset_pred"] == df["onset_true"])
    df["onset_within1"] = df["detected"] & ((df["onset_pred"] - df["onset_true"]).abs() <= 1)
    df["mode_correct"] = (df["mode"] == df["expected_mode"]).astype(float).where(df["localiser"] == DOCTOR)
    return df
