"""Raw files -> cleaned, 5-core, re-indexed, split interactions; auxiliary graphs."""


rule fetch_raw:
    output:
        paths.RAW,
    log:
        "logs/fetch/{dataset}/{file}.log",
    params:
        role=raw_role,
        registry=REGISTRY_FILE,
    retries: 3
    localrule: True
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m mmknockout fetch --registry {params.registry} --dataset {wildcards.dataset} --role {params.role}"
        " --out {output} > {log} 2>&1"


rule prepare_split:
    input:
        ratings=lambda wc: raw_path(wc.dataset, "ratings"),
    output:
        inter=paths.INTER,
        stats=paths.STATS,
        item_map=paths.ITEM_MAP,
        user_map=paths.USER_MAP,
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    wildcard_constraints:
        dataset=pattern_of(datasets_of("registry")),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        seed=config["preprocessing"]["split_seed"],
        kcore=config["preprocessing"]["kcore"],
        out_dir=lambda wc: paths.fill(paths.DATA, dataset=wc.dataset),
    shell:
        "python -m mmknockout prepare --ratings {input.ratings} --name {wildcards.dataset} --out-dir {params.out_dir}"
        " --seed {params.seed} --kcore {params.kcore} > {log} 2>&1"


rule import_mmrec:
    output:
        inter=paths.INTER,
        stats=paths.STATS,
        text=paths.fill(paths.TEXT_FEATURES, dataset="{dataset}", encoder="provided"),
        image=paths.fill(paths.IMAGE_FEATURES, dataset="{dataset}", encoder="provided"),
    log:
        "logs/import_mmrec/{dataset}.log",
    wildcard_constraints:
        dataset=pattern_of(datasets_of("mmrec")),
    conda:
        "../../envs/data.yaml"
    params:
        folder=lambda wc: config["datasets"][wc.dataset]["path"],
        out_dir=lambda wc: paths.fill(paths.DATA, dataset=wc.dataset),
    shell:
        "python -m mmknockout import-mmrec --folder {params.folder} --name {wildcards.dataset} --out-dir {params.out_dir} > {log} 2>&1"


rule aux_graphs:
    input:
        inter=paths.INTER,
    output:
        user=paths.USER_GRAPH,
        item=paths.ITEM_GRAPH,
    log:
        "logs/graphs/{dataset}.log",
    benchmark:
        "benchmarks/graphs/{dataset}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        user_k=config["preprocessing"].get("user_graph_k", 200),
        item_k=config["preprocessing"].get("item_graph_k", 2),
        item_min=config["preprocessing"].get("item_graph_min_count", 2),
    shell:
        "python -m mmknockout graphs --inter {input.inter} --user-out {output.user} --item-out {output.item}"
        " --user-k {params.user_k} --item-k {params.item_k} --item-min-count {params.item_min} > {log} 2>&1"
