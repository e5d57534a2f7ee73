"""SLMRec: self-supervised multimedia recommendation with the FAC (fine-and-coarse) task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import SplitData
from .base import Features, Recommender
from .blocks import id_tables
from .graph import GraphOperator, lightgcn_propagate, normalized_adjacency
from .losses import counted_info_nce
from .ops import Scratch
from .params import HyperParams, hp

Branches = dict[str, tuple[torch.Tensor, torch.Tensor]]  # branch -> (user rows, item rows)
BRANCH_ORDER = ("id", "image", "text")
#: largest precomputed factor P[0; x_m] kept (Baby: the 384-d text factor is 41 MB, the 4096-d image
#: one 434 MB; propagating that modality's 64-d projection per batch instead costs about as many flops)
SPREAD_BYTES = 2**27


@dataclass(frozen=True, kw_only=True)
class SLMRecParams(HyperParams):
    """SLMRec's hyper-parameters (config/models/SLMRec.yaml)."""

    layer_num: int = hp(doc="LightGCN layers of the three graphs", ge=0)
    temp: float = hp(doc="temperature of the main in-batch InfoNCE", gt=0)
    ssl_temp: float = hp(doc="temperature of the FAC InfoNCE terms", gt=0)
    ssl_alpha: float = hp(doc="weight of the FAC self-supervision", ge=0)
    reg: float = hp(doc="unused, as in the toolbox (the optimiser's weight_decay regularises)", ge=0)


def xavier_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)
    return layer


def lightgcn_parity_sums(adj: GraphOperator, ego: torch.Tensor, n_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of LightGCN's even-numbered (0, 2, ..) and odd-numbered layers (together: the layer sum)."""
    even, odd, layer = ego, None, ego
    for depth in range(1, n_layers + 1):
        layer = adj(layer)
        if depth % 2:
            odd = layer if odd is None else odd + layer
        else:
            even = even + layer
    return even, torch.zeros_like(ego) if odd is None else odd


@torch.no_grad()
def spread_item_input(
    adj: GraphOperator, item_input: torch.Tensor, n_users: int, n_layers: int, chunk: int = 512
) -> torch.Tensor:
    """LightGCN layer mean of the fixed input ``[0; item_input]``, in column chunks to bound memory."""
    out = item_input.new_empty(n_users + item_input.shape[0], item_input.shape[1])
    zeros = item_input.new_zeros(n_users, min(chunk, item_input.shape[1]))
    for start in range(0, item_input.shape[1], chunk):
        block = item_input[:, start : start + chunk]
        ego = torch.cat([zeros[:, : block.shape[1]], block])
        out[:, start : start + chunk] = lightgcn_propagate(adj, ego, n_layers)
    return out


class SLMRec(Recommender):
    r"""SLMRec (Tao, Liu, Xia, Wang, Yang, Huang, Chua; IEEE Transactions on Multimedia 2022,
    code: https://github.com/zltao/SLMRec).

    As configured in the MMRec toolbox (``ssl_task: FAC``, ``mm_fusion_mode: concat``,
    ``adj_type: pre`` = :math:`D^{-1/2} A D^{-1/2}`).

    * Features are row-L2-normalised once (a zero row stays zero) and fixed; per modality
      :math:`f_m = W_m \hat x_m + b_m` (``Linear(feat, d)``).
    * Three LightGCN graphs (``layer_num`` layers, layer mean) share the user ID embedding
      :math:`E_u`: ID :math:`[E_u; E_i]`, image :math:`[E_u; f_v]`, text :math:`[E_u; f_t]`, giving
      :math:`(u^{id}, i^{id}), (u^v, i^v), (u^t, i^t)`.
    * Fusion: :math:`u = W_U [u^{id}; u^v; u^t] + b_U`, :math:`i = W_I [i^{id}; i^v; i^t] + b_I`.
    * Main loss: in-batch InfoNCE between :math:`\bar u` and :math:`\bar i` (L2-normalised) with
      temperature ``temp``; the score is :math:`u^\top i` (the toolbox's sigmoid is monotone and
      omitted).
    * FAC self-supervision on the batch's positive items, plain dot products, temperature
      ``ssl_temp``: :math:`a = g_{i,iv}(i^{id})`, :math:`b = g_{v,iv}(i^v)`,
      :math:`L_v = \mathrm{InfoNCE}(a, b)`; coarse level :math:`c = g_{iva,ivat}(g_{iv,iva}(a))`,
      :math:`e = g_{t,ivat}(i^t)` (both d/2), :math:`L_t = \mathrm{InfoNCE}(c, e)`.
    * Total: :math:`L + \alpha_{ssl}(L_v + L_t)`. ``weight_decay`` (1e-4) is applied by the optimiser.

    Training computes the same quantities, only at the batch's users and positive items, without
    projecting every item's features (see :meth:`batch_branches`): LightGCN is linear, so with
    :math:`P` its layer-mean operator, :math:`P[0; \hat X_m W_m^\top + 1 b_m^\top] = (P[0; \hat X_m])
    W_m^\top + (P[0; 1]) b_m^\top`, whose fixed factors are precomputed once (for 4096-d image
    features a (users + items) x 4096 float table). Repeated items of a batch enter the in-batch
    InfoNCE once, with their counts. Evaluation (:meth:`representations`) runs the plain propagation.

    Args (:class:`SLMRecParams`): ``embedding_size`` (d = ``recdim``, 64), ``layer_num``, ``temp``, ``ssl_temp``,
    ``ssl_alpha``. ``reg`` is accepted and unused, as in the toolbox.

    Degenerate features: zero rows stay zero after normalisation, so :math:`f_m` is the bias for
    every item; constant rows give one identical :math:`f_m` for all items. Either way the modality
    graph carries only degree information; no NaN path exists (``F.normalize`` has an eps).
    """

    Params = SLMRecParams
    family = "simple fusion"

    def __init__(self, data: SplitData, features: Features, params: Mapping[str, Any]) -> None:
        super().__init__(data, features, params)
        d = self.embedding_size
        self.user_embedding, self.item_embedding = id_tables(self.n_users, self.n_items, d)
        self.register_buffer("image_feat", F.normalize(features["image"].float(), dim=1))
        self.register_buffer("text_feat", F.normalize(features["text"].float(), dim=1))
        self.image_dense = xavier_linear(self.image_feat.shape[1], d)
        self.text_dense = xavier_linear(self.text_feat.shape[1], d)
        self.item_fusion = xavier_linear(3 * d, d)
        self.user_fusion = xavier_linear(3 * d, d)
        # FAC heads (the toolbox also builds an unused audio head; it is omitted here)
        self.g_i_iv = xavier_linear(d, d)
        self.g_v_iv = xavier_linear(d, d)
        self.g_iv_iva = xavier_linear(d, d)
        self.g_iva_ivat = xavier_linear(d, d // 2)
        self.g_t_ivat = xavier_linear(d, d // 2)
        self.adj = GraphOperator(normalized_adjacency(data.train_users, data.train_items, self.n_users, self.n_items))
        # fixed factors of the modality branches, P[0; x_m] and P[0; 1] (training path only), for the
        # modalities whose factor fits SPREAD_BYTES; the others propagate their projection per batch
        for name in ("image", "text"):
            feat = getattr(self, f"{name}_feat")
            fits = (self.n_users + self.n_items) * feat.shape[1] * feat.element_size() <= SPREAD_BYTES
            spread = spread_item_input(self.adj, feat, self.n_users, self.hp.layer_num) if fits else None
            self.register_buffer(f"{name}_spread", spread, persistent=False)
        ones = torch.ones(self.n_items, 1)
        self.register_buffer(
            "bias_spread", spread_item_input(self.adj, ones, self.n_users, self.hp.layer_num), persistent=False
        )
        self.scratch = {name: Scratch() for name in ("image", "text")}  # see gather_rows

    def branch(self, item_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN on [shared user embeddings; one item input], split into (users, items)."""
        out = lightgcn_propagate(self.adj, torch.cat([self.user_embedding, item_input]), self.hp.layer_num)
        return out[: self.n_users], out[self.n_users :]

    def propagate(self) -> Branches:
        return {
            "id": self.branch(self.item_embedding),
            "image": self.branch(self.image_dense(self.image_feat)),
            "text": self.branch(self.text_dense(self.text_feat)),
        }

    def batch_branches(self, users: torch.Tensor, items: torch.Tensor) -> Branches:
        """The rows ``users`` and ``items`` of :meth:`propagate`'s three branches.

        The graph is bipartite, so :math:`A^l [E_u; E_i]` takes its user rows from :math:`E_u` and
        its item rows from :math:`E_i` when l is even, and the reverse when l is odd: one
        propagation of the ID input gives both the :math:`P[E_u; 0]` part that all branches share
        and the ID branch's own :math:`P[0; E_i]`. The modality parts use the precomputed factors.
        """
        n_users = users.numel()
        nodes = torch.cat([users, items + self.n_users])
        even, odd = lightgcn_parity_sums(
            self.adj, torch.cat([self.user_embedding, self.item_embedding]), self.hp.layer_num
        )
        even, odd = (
            even.index_select(0, nodes) / (self.hp.layer_num + 1),
            odd.index_select(0, nodes) / (self.hp.layer_num + 1),
        )
        shared = torch.cat([even[:n_users], odd[n_users:]])
        parts = {
            "id": torch.cat([odd[:n_users], even[n_users:]]),
            "image": self.modal_part("image", nodes),
            "text": self.modal_part("text", nodes),
        }
        rows = {k: shared + part for k, part in parts.items()}
        return {k: (r[:n_users], r[n_users:]) for k, r in rows.items()}

    def modal_part(self, name: str, nodes: torch.Tensor) -> torch.Tensor:
        """Rows ``nodes`` of :math:`P[0; \\hat X W^\\top + 1 b^\\top]`: from the precomputed factors,
        or (a factor over :data:`SPREAD_BYTES`) by propagating the projected features."""
        dense: nn.Linear = getattr(self, f"{name}_dense")
        if getattr(self, f"{name}_spread") is None:
            projected = dense(getattr(self, f"{name}_feat"))
            ego = torch.cat([projected.new_zeros(self.n_users, projected.shape[1]), projected])
            return lightgcn_propagate(self.adj, ego, self.hp.layer_num).index_select(0, nodes)
        return F.linear(self.gather_rows(name, nodes), dense.weight) + self.bias_spread[nodes] * dense.bias

    def gather_rows(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """Rows of the fixed table ``{name}_spread``, written into a scratch tensor reused per table.

        On CPU a fresh 50 MB tensor per batch costs more in page faults than the copy itself; the
        scratch is only read by this batch's backward pass (autograd would flag any earlier reuse).
        """
        return self.scratch[name].gather(getattr(self, f"{name}_spread"), rows)

    def fuse(self, branches: Branches) -> tuple[torch.Tensor, torch.Tensor]:
        users = self.user_fusion(torch.cat([branches[k][0] for k in BRANCH_ORDER], dim=1))
        items = self.item_fusion(torch.cat([branches[k][1] for k in BRANCH_ORDER], dim=1))
        return users, items

    def fac_loss(self, branches: Branches, counts: torch.Tensor) -> torch.Tensor:
        """Fine (ID vs image) then coarse (ID+image space vs text) item-level InfoNCE.

        ``branches`` hold the batch's distinct positive items, ``counts`` their multiplicities.
        """
        target = torch.arange(counts.numel(), device=counts.device)
        x_id = self.g_i_iv(branches["id"][1])
        x_v = self.g_v_iv(branches["image"][1])
        fine = counted_info_nce(x_id, x_v, target, counts, self.hp.ssl_temp, weights=counts)
        x_ivt = self.g_iva_ivat(self.g_iv_iva(x_id))
        x_t = self.g_t_ivat(branches["text"][1])
        coarse = counted_info_nce(x_ivt, x_t, target, counts, self.hp.ssl_temp, weights=counts)
        return fine + coarse

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_ids, user_at = torch.unique(users, return_inverse=True)
        item_ids, item_at, counts = torch.unique(pos, return_inverse=True, return_counts=True)
        counts = counts.float()
        branches = self.batch_branches(user_ids, item_ids)
        user_reps, item_reps = self.fuse(branches)
        main = counted_info_nce(
            F.normalize(user_reps, dim=1)[user_at], F.normalize(item_reps, dim=1), item_at, counts, self.hp.temp
        )
        return main + self.hp.ssl_alpha * self.fac_loss(branches, counts)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fuse(self.propagate())
