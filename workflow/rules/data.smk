"""Raw files -> cleaned, 5-core, re-indexed, split interactions; auxiliary graphs."""


rule fetch_raw:
    output:
        dest=paths.RAW,
    log:
        paths.log("fetch", "{dataset}/{file}"),
    retries: 3
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        entry=raw_file_entry,
        retries=3,
    script:
        STEP


rule prepare_split:
    input:
        ratings=lambda wc: raw_path(wc.dataset, "ratings"),
    output:
        inter=paths.INTER,
        stats=paths.STATS,
        item_map=paths.ITEM_MAP,
        user_map=paths.USER_MAP,
    log:
        paths.log("prepare", "{dataset}"),
    benchmark:
        paths.benchmark("prepare", "{dataset}")
    wildcard_constraints:
        dataset=pattern_of(datasets_of("registry")),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        seed=config["preprocessing"]["split_seed"],
        kcore=lambda wc: config["datasets"][wc.dataset]["kcore"],
        deduplicate=lambda wc: config["datasets"][wc.dataset]["deduplicate"],
    script:
        STEP


rule import_mmrec:
    output:
        inter=paths.INTER,
        stats=paths.STATS,
        text=paths.fill(paths.TEXT_FEATURES, dataset="{dataset}", encoder="provided"),
        image=paths.fill(paths.IMAGE_FEATURES, dataset="{dataset}", encoder="provided"),
    log:
        paths.log("import_mmrec", "{dataset}"),
    wildcard_constraints:
        dataset=pattern_of(datasets_of("mmrec")),
    conda:
        "../../envs/data.yaml"
    params:
        folder=lambda wc: config["datasets"][wc.dataset]["path"],
        deduplicate=lambda wc: config["datasets"][wc.dataset]["deduplicate"],
    script:
        STEP


rule aux_graphs:
    input:
        unpack(item_count_input),
        inter=paths.INTER,
    output:
        user=paths.USER_GRAPH,
        item=paths.ITEM_GRAPH,
    log:
        paths.log("graphs", "{dataset}"),
    benchmark:
        paths.benchmark("graphs", "{dataset}")
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        user_k=config["preprocessing"]["user_graph_k"],
        item_k=config["preprocessing"]["item_graph_k"],
        item_min_count=config["preprocessing"]["item_graph_min_count"],
    script:
        STEP
