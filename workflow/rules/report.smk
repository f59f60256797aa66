# The index of paper_figures/: every figure and table, the rule and config that make it, what it shows.


rule figure_index:
    input:
        ALL_TARGETS,
    output:
        figures("README.md"),
    params:
        catalogue=str(WORKFLOW_DIR / "catalogue"),
        config_set=CONFIG_SET,
    log:
        results("logs", "figure_index.log"),
    script:
        "../scripts/figure_index.py"


ALL_TARGETS.append(rules.figure_index.output[0])
