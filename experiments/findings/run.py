"""The findings rule's workflow entry (rule ``findings``): read the study tables and raw results, judge every claim,
write ``FINDINGS.md`` and ``findings_summary``.

The rule only reads what the study rules already wrote; it computes nothing but intervals and verdicts.
:func:`from_folder` runs the same claims on a folder of tables alone (e.g. the committed ``paper_figures/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from experiments.atomic import atomic_path
from experiments.figures import write_table
from experiments.findings.claims import beats_peers, calibrated_sigma, fault_localisation, mode_diagnosis, streaming
from experiments.findings.finding import Finding
from experiments.findings.page import render, summary_frame
from experiments.rule_io import Files, by_model, checked, output_paths

if TYPE_CHECKING:
    from experiments.workflow_config import WorkflowConfig

logger = logging.getLogger(__name__)

TABLE_FILES: Mapping[str, str] = {
    "contract": "calibration_contract.csv",
    "contract_tail": "calibration_tail.csv",
    "contract_sizes": "calibration_size.csv",
    "contract_unet": "calibration_contract_unet.csv",
    "contract_tail_unet": "calibration_tail_unet.csv",
    "faults_accuracy": "faults_accuracy.csv",
    "faults_confusion": "faults_mode_confusion.csv",
    "faults_list": "faults_list.csv",
    "corruption_auroc": "corruption_auroc.csv",
    "corruption_layer_auroc": "corruption_layer_auroc.csv",
    "streams_curves": "streams_curves.csv",
    "streams_matched": "streams_matched.csv",
    "streams_delays": "streams_deepdrift_delays.csv",
    "streams_acceptance": "streams_monitor_acceptance.csv",
}
"""The study tables the claims read, by input name (files in the config set's figures folder)."""
MODE_TRUTH_FILES: Mapping[str, str] = {
    "mode_truth_recall": "mode_truth_recall.csv",
    "mode_truth_natural": "mode_truth_natural.csv",
    "mode_truth_mechanism": "mode_truth_mechanism.csv",
    "mode_truth_streams": "mode_truth_streams.csv",
}
"""The mode-truth study's tables (claim 3's independent ground truth); without them claim 3 reads the fault list."""
REPLICATE_FILES: Mapping[str, str] = {"replicates_summary": "replicates_summary.csv"}
"""The replicate study's summary (means over training seeds); without it the claims say one model per
architecture."""
DETECTION_FILES: Mapping[str, str] = {"replicates_detection": "replicates_detection.csv"}
"""Claim 4 per training seed; only where a replicate group's study model is in the corruption benchmark."""
RAW_INPUTS = ("contract_drift", "fault_verdicts", "corruption_scores", "stream_runs")
"""The raw results the intervals read (under the config set's results folder)."""
OPTIONAL_FILES: Mapping[str, str] = {**MODE_TRUTH_FILES, **REPLICATE_FILES, **DETECTION_FILES}
INPUTS = (*TABLE_FILES, *RAW_INPUTS, *OPTIONAL_FILES)
OPTIONAL_GROUPS = (frozenset(MODE_TRUTH_FILES), frozenset(REPLICATE_FILES), frozenset(DETECTION_FILES))
"""Groups of inputs a caller may leave out (each group all or none)."""
OUTPUTS = ("findings", "summary")


@dataclass(frozen=True)
class Raw:
    """The raw results behind the tables, where available (None: intervals from the tables' counts alone)."""

    contract_drift: pd.DataFrame | None = None
    fault_verdicts: pd.DataFrame | None = None
    corruption_scores: Mapping[str, pd.DataFrame] | None = None
    stream_runs: pd.DataFrame | None = None


def judge(tables: Mapping[str, pd.DataFrame], raw: Raw = Raw(), budget: float | None = None) -> list[Finding]:
    """Every claim, in the README's order, from the study tables (:data:`TABLE_FILES` names) and raw results."""
    from experiments.corruption.summary import METHOD_LABELS

    t = tables
    return [
        calibrated_sigma(
            t["contract"],
            raw.contract_drift,
            t.get("contract_tail"),
            t.get("contract_sizes"),
            unet_contract=t.get("contract_unet"),
            unet_tail=t.get("contract_tail_unet"),
            replicates=t.get("replicates_summary"),
        ),
        fault_localisation(t["faults_accuracy"], t["faults_list"], raw.fault_verdicts, t.get("replicates_summary")),
        mode_diagnosis(
            t["faults_accuracy"],
            t["faults_confusion"],
            t["faults_list"],
            t.get("mode_truth_recall"),
            t.get("mode_truth_natural"),
            t.get("mode_truth_mechanism"),
            t.get("mode_truth_streams"),
        ),
        beats_peers(
            t["corruption_auroc"],
            t["corruption_layer_auroc"],
            raw.corruption_scores,
            {label: key for key, label in METHOD_LABELS.items()},
            t.get("replicates_detection"),
        ),
        streaming(
            t["streams_curves"],
            t["streams_matched"],
            t["streams_delays"],
            t["streams_acceptance"],
            raw.stream_runs,
            budget,
        ),
    ]


def write(findings: list[Finding], config_set: str, page: str | Path, summary: str | Path) -> None:
    """``FINDINGS.md`` and the summary table (CSV + Markdown + LaTeX)."""
    with atomic_path(page) as tmp:
        tmp.write_text(render(findings, config_set), encoding="utf-8", newline="\n")
    write_table(summary_frame(findings), summary, caption="The README's claims, their verdicts and key numbers.")
    for finding in findings:
        logger.info("%s: %s (%s)", finding.key, finding.verdict.value, finding.summary)


def _read_tables(paths: Mapping[str, Files]) -> dict[str, pd.DataFrame]:
    names = [*TABLE_FILES, *(n for n in OPTIONAL_FILES if n in paths)]
    return {name: pd.read_csv(paths[name]) for name in names}


def run(cfg: WorkflowConfig, inputs: Mapping[str, Files], outputs: Mapping[str, Files]) -> list[Finding]:
    """Rule ``findings``: every README claim judged on the config set's tables and raw results.

    Args:
        cfg: the config set (``config_set``, ``corruption.models`` and ``streams.budget`` are read).
        inputs: every name of :data:`INPUTS` (``corruption_scores``: one file per model of ``corruption.models``).
        outputs: ``findings`` (the page) and ``summary`` (a table).
    """
    left_out = set().union(*(group for group in OPTIONAL_GROUPS if not group & set(inputs)))
    declared = tuple(n for n in INPUTS if n not in left_out)
    given = checked(inputs, declared, "input", "findings")
    out = output_paths(outputs, OUTPUTS, "findings")
    scores = by_model(given["corruption_scores"], cfg.corruption.models, "findings input 'corruption_scores'")
    raw = Raw(
        contract_drift=pd.read_csv(given["contract_drift"]),
        fault_verdicts=pd.read_csv(given["fault_verdicts"]),
        corruption_scores={model: pd.read_csv(path) for model, path in scores.items()},
        stream_runs=pd.read_csv(given["stream_runs"]),
    )
    findings = judge(_read_tables(given), raw, cfg.streams.budget)
    write(findings, cfg.config_set, out["findings"], out["summary"])
    return findings


def from_folder(figures_dir: str | Path, budget: float | None = None) -> list[Finding]:
    """The claims judged on a folder of study tables alone (no raw results: intervals where counts allow)."""
    folder = Path(figures_dir)
    files = {**TABLE_FILES, **{n: f for n, f in OPTIONAL_FILES.items() if (folder / f).is_file()}}
    return judge({name: pd.read_csv(folder / file) for name, file in files.items()}, Raw(), budget)
