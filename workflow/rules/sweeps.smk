"""The VBPR case study (Fig. 4): sweeps over reg_weight, constant value and noise std."""


rule vbpr_sweeps:
    input:
        records=PLAN.sweep_records(),
    output:
        table=report(paths.SWEEP_TABLE, caption="../report/vbpr_sweeps_table.rst", category="VBPR case study"),
        figure=report(paths.FIG4, caption="../report/vbpr_sweeps.rst", category="VBPR case study"),
    log:
        paths.log("report", "vbpr_sweeps"),
    conda:
        "../../envs/plots.yaml"
    params:
        sweeps=config.get("sweeps"),
        metric="Recall@10",
    script:
        STEP
