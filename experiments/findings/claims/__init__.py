"""The README's claims, one module each: the tables (and, where given, the raw results) in, a :class:`Finding` out.

Every function reads the tables the study rules write (their column names), computes intervals from the counts and
scores behind them, and decides a verdict by the rule stated beside it. With a raw result (per-batch verdicts,
per-batch scores, per-stream runs) the intervals respect its structure (faults as clusters, paired bootstraps over
batches); from tables alone they fall back to what the counts allow and say what that costs. Thresholds are the
claims' own (the README's figures) or the project's acceptance bars (issue 12), named as constants in each claim's
module. This package re-exports each claim's function and the README sentences it judges.
"""

from experiments.findings.claims.localisation import LOCALISATION_QUOTES, fault_localisation
from experiments.findings.claims.modes import MODE_QUOTES, mode_diagnosis
from experiments.findings.claims.peers import beats_peers
from experiments.findings.claims.sigma import SIGMA_QUOTES, calibrated_sigma
from experiments.findings.claims.streams import STREAM_QUOTES, streaming

__all__ = [
    "LOCALISATION_QUOTES",
    "MODE_QUOTES",
    "SIGMA_QUOTES",
    "STREAM_QUOTES",
    "beats_peers",
    "calibrated_sigma",
    "fault_localisation",
    "mode_diagnosis",
    "streaming",
]
