"""Findings: each README claim against the study tables, with 95% intervals and a verdict, written by a rule.

``FINDINGS.md`` says per claim what the README asserts, what the data show (numbers with intervals), and whether
the claim is supported, partly supported or not supported. The package only reads what the study rules wrote.
"""

from experiments.findings.finding import Finding, Table, Verdict
from experiments.findings.intervals import Estimate

__all__ = ["Estimate", "Finding", "Table", "Verdict"]
