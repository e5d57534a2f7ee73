"""Run one workflow step: the rule's named inputs, outputs and params are the arguments of its entry
function in ``mmknockout.workflow.STEPS``."""

from mmknockout.workflow import run_step

run_step(snakemake)  # noqa: F821 (the job object Snakemake injects)
