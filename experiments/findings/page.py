"""The findings page (``FINDINGS.md``) and its one-line-per-claim summary table, from a list of findings.

The page carries no date or time stamp and formats every number itself, so the same results give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from experiments.findings.finding import Finding, Table, Verdict
from experiments.findings.intervals import Estimate

VERDICTS_EXPLAINED = (
    "**supported**: every check passes; **partly**: some do, or the evidence cannot carry more; **not supported**: "
    "no check passes, or the measurement cannot test the claim; **inconclusive**: no data to check."
)


def _cell(value: object) -> str:
    if isinstance(value, Estimate):
        return str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table, every cell formatted here (no number parsing by the table writer)."""
    if frame.empty:
        return "(no rows)"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def summary_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per claim: the claim, its verdict and its key numbers (for ``findings_summary.csv``)."""
    return pd.DataFrame(
        [{"claim": f.claim, "verdict": f.verdict.value, "key numbers": f.summary} for f in findings],
        columns=["claim", "verdict", "key numbers"],
    )


def _table(table: Table) -> list[str]:
    return [f"*{table.caption}*", "", markdown_table(table.frame), ""]


def _section(number: int, finding: Finding) -> list[str]:
    lines = [f"## {number}. {finding.claim}", "", f"**Verdict: {finding.verdict.value}.**", ""]
    if finding.quotes:
        lines += ["The README says:", ""]
        lines += [
            f"> {quote}" + ("" if i == len(finding.quotes) - 1 else "\n>") for i, quote in enumerate(finding.quotes)
        ]
        lines.append("")
    else:
        lines += ["The README makes no sentence of this claim.", ""]
    lines += [finding.why, ""]
    for table in finding.tables:
        lines += _table(table)
    if finding.notes:
        lines += ["What the numbers assume:", ""] + [f"- {note}" for note in finding.notes] + [""]
    return lines


def render(findings: Sequence[Finding], config_set: str) -> str:
    """The whole page: a header, the claims with their verdicts, then one section per claim."""
    counts = {v: sum(f.verdict == v for f in findings) for v in Verdict}
    tally = ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    lines = [
        "# Findings: the README's claims against the data",
        "",
        f"Written by the rule `findings` (`experiments/findings/`) from the tables and raw results of config set "
        f"`{config_set}`; every number is computed from them when the rule runs. Intervals are 95%: Clopper-Pearson "
        "for rare events, Wilson for shares, exact Poisson for false-alarm rates, percentile bootstraps for AUROC, "
        "delays and counts clustered within faults; each table says which.",
        "",
        VERDICTS_EXPLAINED,
        "",
        f"Verdicts: {tally}.",
        "",
        markdown_table(
            pd.DataFrame(
                [
                    {"#": i, "claim": f.claim, "verdict": f"**{f.verdict.value}**", "key numbers": f.summary}
                    for i, f in enumerate(findings, start=1)
                ]
            )
        ),
        "",
    ]
    for i, finding in enumerate(findings, start=1):
        lines += _section(i, finding)
    return "\n".join(lines).rstrip("\n") + "\n"
