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
        configfile=lambda wc: workflow.overwrite_configfiles[-1] if workflow.overwrite_configfiles else "config/config.yaml",
    shell:
        "{PYTHON} aggregate --configfile {params.configfile} --table {output.table} --figure {output.figure}"
        " {input:q} > {log} 2>&1"
