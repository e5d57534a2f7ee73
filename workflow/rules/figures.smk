"""Tables and figures from the selected runs."""


rule aggregate:
    input:
        selected_runs(),
    output:
        table=report(f"{paths.TABLES}/knockout.csv", caption="../report/knockout_table.rst", category="Tables"),
        figure=report(f"{paths.FIGURES}/knockout_change.png", caption="../report/knockout_change.rst", category="Figures"),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/plots.yaml"
    params:
        conditions=",".join(config["conditions"]),
        shown=",".join(config.get("figures", {}).get("conditions", config["conditions"])),
        metric=config.get("figures", {}).get("metric", "NDCG@10"),
        topk=",".join(map(str, config["training"].get("topk", [5, 10, 20, 50]))),
    shell:
        "python -m mmknockout aggregate --conditions {params.conditions} --figure-conditions {params.shown}"
        " --metric {params.metric} --topk {params.topk} --table {output.table} --figure {output.figure}"
        " {input:q} > {log} 2>&1"
