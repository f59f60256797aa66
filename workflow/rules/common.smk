# Paths and helpers shared by every study. Each study appends its final outputs to ALL_TARGETS.

RESULTS = Path(config["results_dir"])
FIGURES = Path(config["figures_dir"])
SCRIPTS = WORKFLOW_DIR / "scripts"
ALL_TARGETS = []


def results(*parts):
    return str(RESULTS.joinpath(*parts))


def figures(*parts):
    return str(FIGURES.joinpath(*parts))


def figure_outputs(stem):
    """PDF + PNG of one figure, marked for `snakemake --report`."""
    return [report(figures(f"{stem}.pdf"), category="figures"), figures(f"{stem}.png")]


def table_outputs(stem):
    """CSV + Markdown + LaTeX of one table."""
    return [report(figures(f"{stem}.csv"), category="tables"), figures(f"{stem}.md"), figures(f"{stem}.tex")]
