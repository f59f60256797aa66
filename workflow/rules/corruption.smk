# Corruption benchmark (figures 1-3): drift MRI, drift vs severity and accuracy, batch-level detection
# against pytorch-ood and torchdrift baselines, and the equal-footing table (every statistic on the same layers,
# same reference rows). Models come from rule train_model.

_COR = config["corruption"]
_COR_MODELS = _COR["models"]
_COR_MEASURED = list(dict.fromkeys(_COR_MODELS + replicate_detection_models()))  # the study's + their seeds
_COR_DIR = ("corruption",)


rule corruption_images:
    output:
        manifest=results(*_COR_DIR, "corrupted_heldout.json"),
    params:
        cache=results(*_COR_DIR, "cache"),
    benchmark:
        results("benchmarks", "corruption_images.tsv")
    log:
        results("logs", "corruption_images.log"),
    threads: 1
    script:
        "../scripts/corruption_images.py"


rule corruption_measure:
    input:
        weights=results("models", "{model}.safetensors"),
        manifest=rules.corruption_images.output.manifest,
    output:
        scores=results(*_COR_DIR, "{model}", "scores.csv.gz"),
        accuracy=results(*_COR_DIR, "{model}", "accuracy.csv"),
        taps=results(*_COR_DIR, "{model}", "taps.csv"),
    benchmark:
        results("benchmarks", "corruption_measure_{model}.tsv")
    log:
        results("logs", "corruption_measure_{model}.log"),
    threads: 1  # one model per core: models are measured in parallel (single-thread forwards are more efficient)
    wildcard_constraints:
        model="|".join(_COR_MEASURED),
    script:
        "../scripts/corruption_measure.py"


rule corruption_report:
    input:
        scores=expand(results(*_COR_DIR, "{model}", "scores.csv.gz"), model=_COR_MODELS),
        accuracy=expand(results(*_COR_DIR, "{model}", "accuracy.csv"), model=_COR_MODELS),
        taps=expand(results(*_COR_DIR, "{model}", "taps.csv"), model=_COR_MODELS),
        metrics=expand(results("models", "{model}.json"), model=_COR_MODELS),
    output:
        detection=results(*_COR_DIR, "detection.csv.gz"),
        detection_layers=results(*_COR_DIR, "detection_layers.csv.gz"),
        drift_profile=results(*_COR_DIR, "drift_profile.csv.gz"),
        mri=figure_outputs("corruption_mri"),
        severity=figure_outputs("corruption_severity"),
        detection_figure=figure_outputs("corruption_detection"),
        clean_accuracy=table_outputs("corruption_clean_accuracy"),
        auroc=table_outputs("corruption_auroc"),
        tpr=table_outputs("corruption_tpr"),
        layer_auroc=table_outputs("corruption_layer_auroc"),
        drift_accuracy=table_outputs("corruption_drift_accuracy"),
        footing=table_outputs("corruption_footing"),
        footing_versus=table_outputs("corruption_footing_versus"),
        footing_figure=figure_outputs("corruption_equal_footing"),
    params:
        models=_COR_MODELS,
    benchmark:
        results("benchmarks", "corruption_report.tsv")
    log:
        results("logs", "corruption_report.log"),
    threads: 1
    script:
        "../scripts/corruption_report.py"


ALL_TARGETS += rules.corruption_report.output
