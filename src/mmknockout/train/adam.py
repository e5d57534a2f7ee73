"""Adam with torch's fused kernel, called directly, and the exponential learning-rate schedule.

``torch.optim.Optimizer`` imports ``torch._dynamo`` on its first call (about 1.5 s of every
training job's start-up, for a compiler the runs never use). :class:`FusedAdam` keeps the same
state and calls the same kernel (``torch._fused_adam_``) with the same arguments as
``torch.optim.Adam(fused=True)``, so the updates are bit-identical (tested); :class:`ExponentialSchedule`
gives the learning rates of ``torch.optim.lr_scheduler.LambdaLR`` with ``factor ** (epoch / step)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class FusedAdam:
    """Adam (L2 weight decay added to the gradient, as ``torch.optim.Adam``) over ``params``.

    State is created at a parameter's first gradient and a parameter without a gradient in a step
    is left alone, as in ``torch.optim``. ``param_groups[0]["lr"]`` is the current learning rate.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.base_lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.param_groups = [{"lr": lr}]
        self.state: dict[torch.nn.Parameter, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (grouped by device and dtype)."""
        groups: dict[tuple[torch.device, torch.dtype], list[list[torch.Tensor]]] = {}
        for p in self.params:
            if p.grad is None:
                continue
            if p not in self.state:
                zeros = torch.zeros_like(p, memory_format=torch.preserve_format)
                step = torch.zeros((), dtype=torch.float32, device=p.device)
                self.state[p] = (zeros, torch.zeros_like(p, memory_format=torch.preserve_format), step)
            exp_avg, exp_avg_sq, step = self.state[p]
            lists = groups.setdefault((p.device, p.dtype), [[], [], [], [], []])
            for bucket, tensor in zip(lists, (p, p.grad, exp_avg, exp_avg_sq, step), strict=True):
                bucket.append(tensor)
        beta1, beta2 = self.betas
        for params, grads, exp_avgs, exp_avg_sqs, steps in groups.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=self.param_groups[0]["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )


class ExponentialSchedule:
    """``lr * factor ** (epoch / step)``; :meth:`step` moves to the next epoch (``LambdaLR``'s values)."""

    def __init__(self, optimizer: FusedAdam, factor: float, step: int) -> None:
        self.optimizer, self.factor, self.every, self.epoch = optimizer, factor, step, 0

    def step(self) -> None:
        self.epoch += 1
        self.optimizer.param_groups[0]["lr"] = self.optimizer.base_lr * self.factor ** (self.epoch / self.every)
