"""One training job per (dataset, feature set, model, condition, grid point, seed); selection."""


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=paths.METRICS,
        history=paths.HISTORY,
        per_user=paths.PER_USER,
    log:
        paths.log("train", paths.RUN_KEY),
    benchmark:
        paths.benchmark("train", paths.RUN_KEY)
    group:
        "train"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
        gpu=uses_gpu,
    params:
        spec=train_spec,
        threads=lambda wc, threads: threads,
    script:
        STEP


rule select_params:
    input:
        records=run_records,
    output:
        selected=paths.SELECTED,
    log:
        paths.log("select", paths.SELECTION_KEY),
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        metric=config["training"]["valid_metric"],
        selection=config["selection"],
    # a short script, not a run: block (which would start a whole Snakemake process per job)
    script:
        STEP
