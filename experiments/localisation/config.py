"""The fault-localisation benchmark's settings (``config["faults"]``) as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from experiments.config import from_mapping, join, keyed
from experiments.data.corruptions import FAMILIES, config_corruptions
from experiments.localisation.faults import INPUT_FAULTS, INTERNAL_FAULTS


def _corruption_lists(raw: Any, path: str) -> Any:
    if isinstance(raw, Mapping):
        for family, names in raw.items():
            config_corruptions(names, join(path, family))
    return raw


@dataclass(frozen=True)
class FaultStudyConfig:
    """Faults injected at known places; does the doctor find where and how the network broke?

    Attributes:
        models: keys of ``config["models"]`` to benchmark.
        input: input/sensor fault family -> strengths (families of
            :data:`experiments.localisation.faults.INPUT_FAULTS`).
        internal: internal fault family -> strengths (:data:`~experiments.localisation.faults.INTERNAL_FAULTS`).
        corruptions: corruption family -> corruption names, for the doctor's verdict on real corruptions.
        n_eval: held-out images per fault (the faulted model's accuracy and the doctor's batches).
        batch_sizes: batch sizes the doctor judges.
        n_batches: batches per fault at each batch size (same order as ``batch_sizes``).
        n_depths: onset taps covered, spread over depth.
        per_segment: which weighted modules feeding each chosen tap are faulted: ``first``, ``first_last`` or ``all``.
        corruption_severity: severity of the corruptions.
        corruption_images: images per corruption (at most ``n_eval``).
        min_accuracy_change: faults that cost at least this many accuracy points form the "harmful" subset.
        seed: seeds the image order and the corruptions.
        heldout_seed: salts the held-out fault set's random draws (masks, noise, channels, weights, bits) and
            its choice of sites; the development set (no salt) stays exactly as it was.
        heldout_offset: the held-out set's images are ``[offset, offset + n_eval)`` of the shuffled pool, after
            the development set's ``[0, n_eval)``.
        control_batches: clean batches per batch size on the unfaulted model (the false-diagnosis rate); the
            largest batch size needs ``control_batches * batch size`` pool images.
        peers: per-layer detectors whose first significant tap (Holm, the doctor's alpha) is scored beside the
            doctor: names of :data:`experiments.localisation.peers.PEER_LOCALISERS`.
        peer_reference_size: MMD's reference sample per tap (drawn from the detector's half of the calibration).
        peer_null_draws: clean null batches per tap and batch size >= 2 for the peers' p-values.
    """

    models: tuple[str, ...]
    input: Mapping[str, tuple[float, ...]] = keyed(INPUT_FAULTS)
    internal: Mapping[str, tuple[float, ...]] = keyed(INTERNAL_FAULTS)
    corruptions: Mapping[str, tuple[str, ...]] = keyed(tuple(FAMILIES), _corruption_lists)
    n_eval: int = 256
    batch_sizes: tuple[int, ...] = (1, 16)
    n_batches: tuple[int, ...] = (32, 16)
    n_depths: int = 5
    per_segment: Literal["first", "first_last", "all"] = "first"
    corruption_severity: int = 3
    corruption_images: int = 256
    min_accuracy_change: float = 2.0
    seed: int = 0
    heldout_seed: int = 1
    heldout_offset: int = 256
    control_batches: int = 500
    peers: tuple[str, ...] = ("mahalanobis", "mmd")
    peer_reference_size: int = 100
    peer_null_draws: int = 1000

    def __post_init__(self) -> None:
        if self.heldout_offset < self.n_eval:
            raise ValueError(
                f"heldout_offset {self.heldout_offset} overlaps the development images [0, {self.n_eval}); "
                f"use at least n_eval"
            )
        if self.heldout_seed < 1:
            raise ValueError("heldout_seed must be >= 1 (0 would be the development set's unsalted draws)")
        if len(self.n_batches) != len(self.batch_sizes):
            raise ValueError(
                f"n_batches {list(self.n_batches)} needs one entry per batch size {list(self.batch_sizes)}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], path: str = "faults") -> FaultStudyConfig:
        return from_mapping(cls, cfg, path)
