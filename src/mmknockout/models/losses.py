"""Losses shared by the models, defined as in the MMRec toolbox."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: -mean log sigmoid(s_pos - s_neg) (Rendle et al., UAI 2009)."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def emb_norm_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: sum of the Frobenius norms of the batch embeddings over the batch size."""
    batch = embeddings[-1].shape[0]
    return sum(torch.linalg.norm(e) for e in embeddings) / batch


def l2_sq_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """Half the sum of squared entries over the batch size (the usual ``L2`` regulariser)."""
    batch = embeddings[-1].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives: row i of ``view1`` should match row i of ``view2``."""
    v1, v2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = v1 @ v2.T / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


class _MeanSquare(torch.autograd.Function):
    """``x.pow(2).mean()`` with a one-pass backward ``2 x g / n``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        flat = x.reshape(-1)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return x * (2 * grad / x.numel())


def mean_square(x: torch.Tensor) -> torch.Tensor:
    return _MeanSquare.apply(x)
