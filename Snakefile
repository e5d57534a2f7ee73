"""Modality knockout: do multimodal features really help recommendation?

Raw data -> 5-core split -> text/image features and auxiliary graphs -> one training run per
(dataset, feature set, model, condition, grid point, seed) -> grid-point selection -> tables,
figures and a report. The default config is the laptop demo; config/paper.yaml is the study.
"""

import os
import sys

from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; `--configfile` replaces it (rather than merging into it).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# Jobs import the package from src/ without an install inside each conda env.
SRC = os.path.join(workflow.basedir, "src")
shell.prefix('export PYTHONPATH="' + SRC + '${{PYTHONPATH:+:$PYTHONPATH}}"; ')  # braces escaped for Snakemake
sys.path.insert(0, SRC)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/zhang.smk"
include: "workflow/rules/kieu.smk"
include: "workflow/rules/pomo.smk"
include: "workflow/rules/zhu.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),
