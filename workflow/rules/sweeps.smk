"""The VBPR case study (Fig. 4): sweeps over reg_weight, constant value and noise std."""


rule vbpr_sweeps:
    input:
        sweep_records(),
    output:
        table=report(f"{paths.TABLES}/vbpr_sweeps.csv", caption="../report/vbpr_sweeps_table.rst", category="VBPR case study"),
        figure=report(f"{paths.FIGURES}/fig4_vbpr_sweeps.png", caption="../report/vbpr_sweeps.rst", category="VBPR case study"),
    log:
        "logs/vbpr_sweeps.log",
    conda:
        "../../envs/plots.yaml"
    params:
        sweeps=json.dumps(SWEEPS),
    shell:
        "python -m mmknockout sweeps --sweeps {params.sweeps:q} --metric Recall@10 --table {output.table}"
        " --figure {output.figure} {input:q} > {log} 2>&1"
