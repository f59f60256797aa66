"""The corruption-families notebook runs end to end in smoke mode (jupytext -> ipynb -> nbclient)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "corruption_families.py"


@pytest.mark.slow
def test_corruption_families_notebook_runs_in_smoke_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPDRIFT_SMOKE", "1")
    monkeypatch.setenv("DEEPDRIFT_RESULTS_DIR", str(tmp_path / "no-results"))  # force the on-the-spot smoke profile
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = jupytext.read(NOTEBOOK)
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    jupytext.write(notebook, tmp_path / "corruption_families.ipynb")
    executed = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = "".join(
        out.get("text", "") for cell in executed.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "smoke profile (untrained CNN" in outputs
    assert "adjusted Rand index" in outputs or any(
        "adjusted Rand index" in str(out.get("data", {})) for cell in executed.cells for out in cell.get("outputs", [])
    )
