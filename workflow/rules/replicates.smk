# Replicates (issue 12, item 1): the headline numbers on independently trained models of one recipe (another
# training seed each): the sigma check on fresh calibration splits and the doctor on the held-out fault set.

_REPLICATES = config["replicates"]
_REPLICATE_MODELS = [key for keys in _REPLICATES["groups"].values() for key in keys]


rule replicates:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_REPLICATE_MODELS),
        metrics=expand(results("models", "{model}.json"), model=_REPLICATE_MODELS),
    output:
        counts=results("replicates", "sigma_counts.csv"),
        verdicts=results("replicates", "verdicts.csv.gz"),
        per_seed=table_outputs("replicates_per_seed"),
        summary=table_outputs("replicates_summary"),
        figure=figure_outputs("replicates_seeds"),
    benchmark:
        results("benchmarks", "replicates.tsv")
    log:
        results("logs", "replicates.log"),
    threads: 1
    script:
        "../scripts/replicates.py"


ALL_TARGETS += rules.replicates.output


# Claim 4 per training seed: the corruption benchmark's equal-footing scores of every model of the groups whose study
# model the benchmark measures (none in the default set: its replicated CNN is not in the corruption study).
_DETECTION_MODELS = replicate_detection_models()


rule replicates_detection:
    input:
        scores=expand(results("corruption", "{model}", "scores.csv.gz"), model=_DETECTION_MODELS),
        accuracy=expand(results("corruption", "{model}", "accuracy.csv"), model=_DETECTION_MODELS),
    output:
        per_seed=results("replicates", "detection_per_seed.csv"),
        summary=table_outputs("replicates_detection"),
        figure=figure_outputs("replicates_detection_seeds"),
    benchmark:
        results("benchmarks", "replicates_detection.tsv")
    log:
        results("logs", "replicates_detection.log"),
    threads: 1
    script:
        "../scripts/replicates_detection.py"


if _DETECTION_MODELS:
    ALL_TARGETS += rules.replicates_detection.output
