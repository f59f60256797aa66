"""Write paper_figures/README.md from the figure catalogue and the files that actually exist."""

from __future__ import annotations

from pathlib import Path

import yaml

from experiments.atomic import atomic_path

_FIGURE_SUFFIXES = (".pdf", ".png")
_TABLE_SUFFIXES = (".csv", ".md", ".tex")


def load_catalogue(catalogue_dir: str | Path) -> dict[str, dict]:
    """Merge the per-study catalogues; a stem claimed twice is an error."""
    merged: dict[str, dict] = {}
    for path in sorted(Path(catalogue_dir).glob("*.yaml")):
        for stem, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if stem in merged:
                raise ValueError(f"{stem!r} is catalogued twice (again in {path.name})")
            merged[stem] = entry
    return merged


def write_index(figures_dir: str | Path, catalogue_dir: str | Path, config_set: str, out: str | Path) -> Path:
    """Index every catalogued output present in ``figures_dir``; refuse uncatalogued figures or tables.

    Raises:
        ValueError: an output in ``figures_dir`` has no catalogue entry (every figure must say what it shows).
    """
    figures_dir = Path(figures_dir)
    catalogue = load_catalogue(catalogue_dir)
    present = {
        p.stem
        for p in figures_dir.iterdir()
        if p.suffix in _FIGURE_SUFFIXES + _TABLE_SUFFIXES and p.name != "README.md"
    }
    unknown = sorted(present - set(catalogue))
    if unknown:
        raise ValueError(f"outputs without an entry in workflow/catalogue/*.yaml: {unknown}")
    lines = [
        "# Paper figures and tables",
        "",
        f"Written by the workflow (`config_set={config_set}`); regenerate with `make paper-figures`. Every file",
        "is computed from data by the rule named here; `snakemake --report` bundles them into one HTML page.",
        "",
        "| file | kind | rule | what it shows |",
        "| --- | --- | --- | --- |",
    ]
    for stem in sorted(present):
        entry = catalogue[stem]
        suffixes = _FIGURE_SUFFIXES if entry["kind"] == "figure" else _TABLE_SUFFIXES
        files = " ".join(f"[{s[1:]}]({stem}{s})" for s in suffixes if (figures_dir / f"{stem}{s}").exists())
        lines.append(f"| `{stem}` {files} | {entry['kind']} | `{entry['rule']}` | {entry['shows']} |")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(out)
