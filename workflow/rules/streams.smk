# Streaming-detection benchmark: clean streams switching to corruptions; delay and false alarms of every detector.

_STREAMS = config["streams"]


rule stream_detection:
    input:
        weights=expand(results("models", "{model}.safetensors"), model=_STREAMS["models"]),
    output:
        runs=results("streams", "runs.csv"),
        curves=table_outputs("streams_curves"),
        matched=table_outputs("streams_matched"),
        deepdrift_delays=table_outputs("streams_deepdrift_delays"),
        monitor_acceptance=table_outputs("streams_monitor_acceptance"),
        timeline=figure_outputs("streams_timeline"),
        delay_far=figure_outputs("streams_delay_far"),
    params:
        cache_dir=results("cache", "corruptions"),
    benchmark:
        results("benchmarks", "stream_detection.tsv")
    log:
        results("logs", "stream_detection.log"),
    threads: config["threads"]
    script:
        "../scripts/stream_detection.py"


ALL_TARGETS += rules.stream_detection.output
