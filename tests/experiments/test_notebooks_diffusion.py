"""The diffusion explorer notebook runs end to end in smoke mode (jupytext -> ipynb -> nbclient)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "diffusion_explorer.py"


@pytest.mark.slow
def test_diffusion_explorer_runs_in_smoke_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEEPDRIFT_SMOKE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("DEEPDRIFT_RESULTS_DIR", str(tmp_path))  # hermetic: no study outputs, so it trains a tiny model
    notebook = jupytext.read(NOTEBOOK)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "smoke mode True" in text and str(tmp_path) in text
