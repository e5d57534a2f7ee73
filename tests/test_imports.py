"""A training job's start-up: what the run-step path imports, and the optimiser that avoids torch._dynamo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmknockout.train.adam import ExponentialSchedule, FusedAdam

#: modules a training job never needs; each costs from 0.1 s (sklearn) to 1.5 s (torch._dynamo)
HEAVY = ("torch._dynamo", "transformers", "matplotlib", "sklearn", "jsonschema", "snakemake.workflow")

TRAIN_JOB = """
import json, sys
from pathlib import Path
import model_kit
from mmknockout.workflow import entry_function

folder = Path(sys.argv[1])
inputs = model_kit.write_tiny_dataset(folder)
spec = model_kit.run_spec(sys.argv[2], model_kit.params(sys.argv[2]), training={"epochs": 2})
entry_function("train")(
    spec=spec.to_dict(), inter=str(inputs["inter"]), text=str(inputs["features"]["text"]),
    image=str(inputs["features"]["image"]), threads=1,
    **{k: str(v) for k, v in model_kit.run_outputs(folder).items()},
)
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str, *args: str) -> set[str]:
    """The modules loaded once ``code`` (which prints ``sorted(sys.modules)`` as JSON last) has run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("model", ["BPR", "VBPR"])
def test_training_job_imports_no_heavy_module(tmp_path: Path, model: str) -> None:
    loaded = _modules_after(TRAIN_JOB, str(tmp_path), model)
    assert "mmknockout.run" in loaded and (tmp_path / "metrics.json").is_file()
    assert not [m for m in HEAVY if m in loaded], "a training job imported heavy modules it does not use"


def test_import_check_sees_a_heavy_module() -> None:
    """The check above can fail: torch.optim's optimiser pulls in torch._dynamo on first use."""
    code = "import json, sys, torch\ntorch.optim.Adam([torch.ones(2, requires_grad=True)])\n"
    assert "torch._dynamo" in _modules_after(code + "print(json.dumps(sorted(sys.modules)))")


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    net.register_parameter("unused", torch.nn.Parameter(torch.randn(4)))  # never gets a gradient
    return net


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fused_adam_is_bit_identical_to_torch_adam_with_lambda_schedule(weight_decay: float) -> None:
    ours, ref = _net(3), _net(3)
    opt = FusedAdam(ours.parameters(), lr=0.01, weight_decay=weight_decay)
    sched = ExponentialSchedule(opt, 0.5, 2)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01, weight_decay=weight_decay, fused=True)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda epoch: 0.5 ** (epoch / 2))
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        for batch in x.split(8):
            for net, o in ((ours, opt), (ref, ref_opt)):
                o.zero_grad()
                net(batch).square().mean().backward()
                o.step()
        sched.step(), ref_sched.step()
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(ours.unused, _net(3).unused)  # no gradient: never stepped
    assert not torch.equal(ours[0].weight, _net(3)[0].weight)
