"""Studies quiet the library's logs only through its documented switch, never by setting logger levels by hand."""

from __future__ import annotations

import ast
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_no_study_sets_a_logger_level_by_hand() -> None:
    offenders = []
    for path in EXPERIMENTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("setLevel", "disabled"):
                offenders.append(f"{path.relative_to(EXPERIMENTS.parent)}:{node.lineno}")
    assert offenders == [], f"use `with deepdrift.log_level('ERROR'):` instead: {offenders}"
