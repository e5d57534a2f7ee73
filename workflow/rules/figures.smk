"""The knockout table and its figure from the selected runs."""


rule aggregate:
    input:
        selected=PLAN.selected_runs(),
    output:
        table=report(paths.KNOCKOUT_TABLE, caption="../report/knockout_table.rst", category="Tables"),
        figure=report(paths.KNOCKOUT_FIGURE, caption="../report/knockout_change.rst", category="Figures"),
    log:
        paths.log("report", "aggregate"),
    conda:
        "../../envs/plots.yaml"
    params:
        conditions=list(config["conditions"]),
        figure_conditions=PLAN.figure_conditions,
        metric=config["figures"]["metric"],
        topk=config["training"]["topk"],
    script:
        STEP
