"""Studies quiet the library's logs only inside a block, and never leave a ``deepdrift`` logger changed."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from experiments.quiet import quiet_logger

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_quiet_logger_restores_the_level_even_after_an_error() -> None:
    logger = logging.getLogger("deepdrift.monitor")
    before = logger.level
    with quiet_logger("deepdrift.monitor") as quiet:
        assert quiet is logger and logger.level == logging.ERROR
    assert logger.level == before
    with pytest.raises(RuntimeError), quiet_logger("deepdrift.monitor"):
        raise RuntimeError("boom")
    assert logger.level == before


def test_no_study_sets_a_logger_level_outside_quiet_logger() -> None:
    offenders = []
    for path in EXPERIMENTS.rglob("*.py"):
        if path.name == "quiet.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("setLevel", "disabled"):
                offenders.append(f"{path.relative_to(EXPERIMENTS.parent)}:{node.lineno}")
    assert offenders == [], f"use experiments.quiet.quiet_logger instead: {offenders}"
