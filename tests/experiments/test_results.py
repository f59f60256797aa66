"""The results accessor: one environment variable, and the same layout as the workflow's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from experiments.results import (
    DIFFUSION_FRAMES,
    REPO_ROOT,
    RESULTS_DIR_ENV,
    Results,
    diffusion_run,
    parse_diffusion_run,
)

ROOT = Path("results/test")  # the test config set's results_dir, as the rules spell it


def _with_run(pattern: str, run: str) -> str:
    """A rule's output pattern with its ``{run}`` wildcard (and any inlined constraint) filled in."""
    return re.sub(r"\{run(,[^}]*)?\}", run, str(pattern))


def test_the_environment_variable_moves_every_reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(RESULTS_DIR_ENV, raising=False)
    assert Results.of("test").root == REPO_ROOT / "results" / "test"
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path))
    assert Results.of("test").root == tmp_path
    assert Results.of("test", root="elsewhere").root == Path("elsewhere")


def test_diffusion_run_names_round_trip() -> None:
    assert diffusion_run(32, 1) == "N32_s1" and parse_diffusion_run("N32_s1") == (32, 1)
    with pytest.raises(ValueError, match="not a diffusion run name"):
        parse_diffusion_run("N32")


def test_paths_are_the_rules_outputs(workflow_rules) -> None:
    results = Results(ROOT)
    assert workflow_rules["corruption_report"].output.drift_profile == str(results.corruption_profile)
    run = diffusion_run(4, 0)
    manifest = workflow_rules["diffusion_train"].output.manifest
    assert _with_run(manifest, run) == str(results.diffusion_manifest(4, 0))
    evaluated = workflow_rules["diffusion_evaluate"].output
    for frame in DIFFUSION_FRAMES:
        assert _with_run(getattr(evaluated, frame), run) == str(results.diffusion_dir(4, 0) / f"{frame}.csv")


def test_diffusion_frames_concatenate_every_run(tmp_path: Path) -> None:
    results = Results(tmp_path)
    assert results.diffusion_frames() == {}
    for n in (4, 32):
        folder = results.diffusion_dir(n, 0)
        folder.mkdir(parents=True)
        for frame in DIFFUSION_FRAMES:
            pd.DataFrame({"n_train": [n], "value": [1.0]}).to_csv(folder / f"{frame}.csv", index=False)
    frames = results.diffusion_frames()
    assert set(frames) == set(DIFFUSION_FRAMES)
    assert sorted(frames["drift"]["n_train"]) == [4, 32]
