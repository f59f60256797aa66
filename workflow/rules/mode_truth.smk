# Failure modes with independent ground truth (issue 12, items 4 and 7): perturbations whose mechanism defines the
# mode, natural shifts (class prior, classes a model never saw), the doctor against them, and a held-out-class stream.

_MODE_TRUTH = config["mode_truth"]


rule mode_truth:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_MODE_TRUTH["models"]),
    output:
        verdicts=results("mode_truth", "verdicts.csv.gz"),
        mechanism_taps=results("mode_truth", "mechanism_taps.csv"),
        streams=results("mode_truth", "streams.csv"),
        confusion=table_outputs("mode_truth_confusion"),
        recall=table_outputs("mode_truth_recall"),
        natural=table_outputs("mode_truth_natural"),
        onsets=table_outputs("mode_truth_onsets"),
        mechanism=table_outputs("mode_truth_mechanism"),
        stream_summary=table_outputs("mode_truth_streams"),
        modes_figure=figure_outputs("mode_truth_modes"),
        depth_figure=figure_outputs("mode_truth_depth"),
    benchmark:
        results("benchmarks", "mode_truth.tsv")
    log:
        results("logs", "mode_truth.log"),
    threads: 1
    script:
        "../scripts/mode_truth.py"


ALL_TARGETS += rules.mode_truth.output
