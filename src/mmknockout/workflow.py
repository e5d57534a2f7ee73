"""The contract between the Snakemake rules and the package: one typed entry function per step.

Every rule that runs package code has ``script: "../scripts/step.py"``, which calls
:func:`run_step`. The rule's *named* inputs, outputs and params are the keyword arguments of the
entry function listed under the rule's name in :data:`STEPS`; nothing travels through a shell
line. The job's stdout and stderr (Python's and any native library's) go to the rule's log, and an
:class:`~mmknockout.errors.InputError` ends the job with its one-line message.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .errors import InputError

#: rule name -> "module:function" (imported only when the step runs)
STEPS: dict[str, str] = {
    "fetch_raw": "mmknockout.data.download:fetch_file",
    "prepare_split": "mmknockout.data.preprocess:prepare_split",
    "import_mmrec": "mmknockout.data.mmrec:import_mmrec_step",
    "aux_graphs": "mmknockout.data.graphs:graphs_step",
    "text_features": "mmknockout.features.text:text_features",
    "image_features_upstream": "mmknockout.features.image:image_features",
    "download_images": "mmknockout.data.images:download_step",
    "image_features_encoder": "mmknockout.features.vision:vision_features",
    "vl_text_features": "mmknockout.features.vl:encode_step",
    "vl_image_features": "mmknockout.features.vl:encode_step",
    "concat_features": "mmknockout.features.concat:concat_step",
    "keyword_features": "mmknockout.features.keywords:keywords_step",
    "tiny_models": "mmknockout.features.tiny_step:tiny_models_step",
    "fetch_models": "mmknockout.features.hub:fetch_models_step",
    "train": "mmknockout.run:train_step",
    "select_params": "mmknockout.analysis.selection:select_step",
    "aggregate": "mmknockout.analysis.aggregate:aggregate_step",
    "vbpr_sweeps": "mmknockout.analysis.sweeps:sweeps_step",
    "significance": "mmknockout.analysis.stats:significance_step",
    "study_tables": "mmknockout.analysis.tables:build_study_tables",
    "appendix_table": "mmknockout.analysis.tables:build_appendix",
    "ours_vs_published": "mmknockout.analysis.tables:build_comparison",
    "fig1_knockout": "mmknockout.analysis.tables:build_fig1",
    "fig2_noise_vs_constant": "mmknockout.analysis.tables:build_fig2",
    "fig3_embeddings": "mmknockout.analysis.embeddings:build",
    "runtime_table": "mmknockout.analysis.runtime:runtime_step",
    "zhang_table": "mmknockout.analysis.zhang:table_step",
    "zhang_comparison": "mmknockout.analysis.zhang:comparison_step",
    "kieu_table1": "mmknockout.analysis.kieu:table1_step",
    "kieu_table2": "mmknockout.analysis.kieu:table2_step",
    "kieu_contribution": "mmknockout.analysis.kieu:contribution_step",
    "pomo_claims": "mmknockout.analysis.pomo:claims_step",
    "seq_split": "mmknockout.data.sequential:seq_split_step",
    "semantic_ids": "mmknockout.genrec.sids:semantic_ids_step",
    "train_genrec": "mmknockout.genrec.run:train_genrec_step",
    "zhu_sids": "mmknockout.analysis.zhu:sids_step",
    "zhu_tables": "mmknockout.analysis.zhu:tables_step",
}


def entry_function(rule: str) -> Callable[..., Any]:
    """The entry function of a rule."""
    if rule not in STEPS:
        raise InputError(f"rule '{rule}' has no entry function in mmknockout.workflow.STEPS")
    module, name = STEPS[rule].split(":")
    return getattr(importlib.import_module(module), name)


def step_arguments(job: Any) -> dict[str, Any]:
    """The named inputs, outputs and params of a Snakemake job as plain Python values.

    A name given twice (an input and an output called alike) is a mistake in the rule file."""
    arguments: dict[str, Any] = {}
    for group in (job.input, job.output, job.params):
        for name, value in group.items():
            if name in arguments:
                raise InputError(f"rule '{job.rule}': '{name}' is named twice among inputs, outputs and params")
            arguments[name] = _plain(value)
    return arguments


def run_step(job: Any) -> None:
    """Run the entry function of ``job.rule`` with the job's arguments; log to ``job.log[0]``."""
    log = job.log[0] if len(job.log) else None
    try:
        with _output_to(log):
            try:
                entry_function(job.rule)(**step_arguments(job))
            except InputError as exc:
                print(f"{job.rule}: error: {exc}", file=sys.stderr, flush=True)
                raise
            except BaseException:
                traceback.print_exc()
                raise
    except InputError as exc:  # once more on the console, beside Snakemake's pointer to the log
        print(f"{job.rule}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _plain(value: Any) -> Any:
    """Snakemake's named lists and IOFile strings as lists and str."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@contextmanager
def _output_to(log: str | None) -> Iterator[None]:
    """Send file descriptors 1 and 2 (Python and native code alike) to ``log`` while the step runs."""
    if log is None:
        yield
        return
    os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "w") as fh:
        os.dup2(fh.fileno(), 1), os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
