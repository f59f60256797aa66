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


def replicate_detection_models():
    """Every model of the replicate groups whose study model (first key) is in the corruption benchmark: their
    detection is measured per seed (rule replicates_detection; ReplicatesConfig.detection_groups in Python)."""
    studied = config["corruption"]["models"]
    groups = config["replicates"]["groups"].values()
    return [key for keys in groups if keys[0] in studied for key in keys]
