"""One training job per (dataset, feature set, model, condition, grid point, seed); selection."""


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics=paths.METRICS,
        history=paths.HISTORY,
        per_user=paths.PER_USER,
    log:
        "logs/train/{dataset}/{feature_set}/{model}/{condition}/{params}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{dataset}/{feature_set}/{model}/{condition}/{params}/seed{seed}.tsv"
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
        spec=run_spec_json,
        out_dir=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "python -m mmknockout train --dataset {wildcards.dataset} --model {wildcards.model} --condition {wildcards.condition}"
        " --spec {params.spec:q} --out-dir {params.out_dir} --threads {threads} --progress > {log} 2>&1"


rule select_params:
    input:
        run_records,
    output:
        paths.SELECTED,
    log:
        "logs/select/{dataset}/{feature_set}/{model}/{condition}/seed{seed}.log",
    localrule: True
    params:
        metric=config["training"].get("valid_metric", "NDCG@5"),
        selection=config["selection"],
    run:
        # runs inside the Snakemake process: one small JSON per model and condition, no new interpreter
        select_grid_point(input, output[0], params.metric, params.selection)
