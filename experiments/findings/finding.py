"""What a findings page says about one claim: the claim, the README's own words, the numbers, and a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import pandas as pd


class Verdict(str, Enum):
    """How far the data carry a claim. "Not supported" is a result like any other and is written as plainly."""

    SUPPORTED = "supported"
    PARTLY = "partly"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Table:
    """One table of a finding: a caption and a frame of ints, strings and :class:`~.intervals.Estimate` cells."""

    caption: str
    frame: pd.DataFrame = field(compare=False)


@dataclass(frozen=True)
class Finding:
    """One README claim against the data.

    Attributes:
        key: short identifier (``calibrated_sigma``).
        claim: the claim as tested, one line.
        quotes: the README's own wording, verbatim (empty where the README makes no such sentence).
        verdict: supported / partly / not supported / inconclusive.
        why: a paragraph: which numbers decide the verdict, and what limits it.
        summary: the key numbers on one line (the summary table).
        tables: the numbers, with their intervals.
        notes: what the intervals assume, and what the data cannot say.
    """

    key: str
    claim: str
    quotes: tuple[str, ...]
    verdict: Verdict
    why: str
    summary: str
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()


def combine(passed: Sequence[bool]) -> Verdict:
    """Supported when every check passes, partly when some do, not supported when none does (an unresolved check
    counts as not passing: it leaves the claim without evidence), inconclusive when there is nothing to check."""
    if not passed:
        return Verdict.INCONCLUSIVE
    if all(passed):
        return Verdict.SUPPORTED
    return Verdict.PARTLY if any(passed) else Verdict.NOT_SUPPORTED
