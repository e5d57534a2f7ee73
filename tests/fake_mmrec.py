"""A tiny stand-in for an MMRec checkout and a tiny MMRec-layout folder, for the driver's tests.

The fake toolbox has the entry points the driver uses (Config, RecDataset, the two loaders,
init_logger, get_model, get_trainer) and imports what the real one imports without needing it
(torchvision, lmdb); its model calls ``.cuda()`` and caches a file in the data folder, as the
real models do, and its trainer reports fixed metrics, so that a test can check what the driver
passes through.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

FAKE_TEST = {"recall@20": 0.25, "ndcg@20": 0.125}

UTILS = {
    "configurator.py": """
        import os, yaml, torch

        class Config:
            def __init__(self, model, dataset, config_dict):
                merged, hyper = {}, []
                for f in ("overall.yaml", os.path.join("model", model + ".yaml")):
                    with open(os.path.join(os.getcwd(), "configs", f)) as fh:
                        values = yaml.safe_load(fh)
                    hyper += values.get("hyper_parameters", [])
                    merged.update(values)
                merged["hyper_parameters"] = hyper
                merged.update(config_dict, model=model, dataset=dataset)
                merged["device"] = torch.device("cuda" if merged["use_gpu"] else "cpu")
                self.final_config_dict = merged

            def __getitem__(self, key):
                return self.final_config_dict.get(key)

            def __setitem__(self, key, value):
                self.final_config_dict[key] = value
        """,
    "dataset.py": """
        import os
        import lmdb  # noqa: F401  (the real toolbox imports it for raw images)
        import pandas as pd

        class RecDataset:
            def __init__(self, config, df=None):
                self.config = config
                path = os.path.join(config["data_path"] + config["dataset"], config["inter_file_name"])
                self.df = pd.read_csv(path, sep=config["field_separator"]) if df is None else df

            def split(self):
                return [RecDataset(self.config, self.df[self.df.x_label == i]) for i in range(3)]

            def __str__(self):
                self.inter_num = len(self.df)
                return f"{self.inter_num} interactions"
        """,
    "dataloader.py": """
        class TrainDataLoader:
            def __init__(self, config, dataset, batch_size, shuffle):
                self.config, self.dataset = config, dataset
                self.n_inter = dataset.inter_num  # set by str(dataset), as in the toolbox

            def pretrain_setup(self):
                pass

        class EvalDataLoader(TrainDataLoader):
            def __init__(self, config, dataset, additional_dataset, batch_size):
                super().__init__(config, dataset, batch_size, False)
        """,
    "logger.py": """
        import logging, os

        def init_logger(config):
            os.makedirs("log", exist_ok=True)
            logging.getLogger().addHandler(logging.FileHandler(os.path.join("log", "run.log")))
        """,
    "utils.py": """
        import importlib, random, numpy as np, torch

        def init_seed(seed):
            random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)

        def get_model(name):
            return getattr(importlib.import_module("models." + name.lower()), name)

        def get_trainer():
            return importlib.import_module("common.trainer").Trainer
        """,
    "data_utils.py": """
        import torchvision.transforms as transforms  # noqa: F401
        from torchvision.transforms.functional import pad as img_pad  # noqa: F401
        """,
}

MODEL = """
    import os, time, numpy as np, torch, scipy.sparse as sp
    from utils import data_utils  # noqa: F401

    class BPR(torch.nn.Module):
        def __init__(self, config, loader):
            super().__init__()
            if config["reg_weight"] == -1:
                raise ValueError("reg_weight -1 refused by the fake model")
            self.weight = torch.nn.Parameter(torch.zeros(3).cuda())
            self.reg_weight = config["reg_weight"]
            cache = os.path.join(config["data_path"] + config["dataset"], "cached_adj.pt")
            torch.save(torch.zeros(2), cache)  # the real models cache kNN graphs in the data folder
            a = sp.dok_matrix((3, 3), dtype=np.float32)
            a._update({(0, 1): 1.0})
            assert a.nnz == 1
            assert np.float is float
            from torch_scatter import scatter_add  # at run time, as the toolbox's graph normalisation

            summed = scatter_add(torch.ones(3), torch.tensor([0, 0, 2]), dim=0, dim_size=4)
            assert summed.tolist() == [2.0, 0.0, 1.0, 0.0]

        def pre_epoch_processing(self):
            time.sleep(0.002)
    """

TRAINER = """
    import time, torch

    class Trainer:
        def __init__(self, config, model, mg=False):
            self.config, self.model = config, model
            self.train_loss_dict, self.cur_step = {}, 0
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                torch.optim.SGD(model.parameters(), lr=0.1), lambda e: 1.0)

        def _train_epoch(self, train_data, epoch):
            time.sleep(0.01)
            return 0.0, []

        def evaluate(self, eval_data):
            time.sleep(0.005)
            return {"recall@20": 0.5}

        def fit(self, train_data, valid_data=None, test_data=None, saved=False, verbose=True):
            for epoch in range(self.config["epochs"]):
                self.train_loss_dict[epoch] = 1.0
            self.cur_step = 1
            test = {k: v * (1 + self.config["seed"] % 2) for k, v in FAKE_TEST.items()}
            return 0.5, {"recall@20": 0.5, "ndcg@20": 0.25}, test
    """.replace("FAKE_TEST", repr(FAKE_TEST))


def fake_toolbox(root: Path, reg_weight: str = "[2.0, 1.0e-4]") -> Path:
    """Write the fake checkout under ``root``; returns ``root``."""
    src = root / "src"
    for folder in ("configs/model", "utils", "models", "common"):
        (src / folder).mkdir(parents=True, exist_ok=True)
    (src / "configs" / "overall.yaml").write_text(
        "use_gpu: True\nseed: [999]\nepochs: 1000\nstopping_step: 20\ntrain_batch_size: 2048\n"
        "eval_batch_size: 4096\nlearning_rate: 0.001\nlearning_rate_scheduler: [1.0, 50]\nembedding_size: 64\n"
        "weight_decay: 0.0\nhyper_parameters: ['seed']\n"
    )
    (src / "configs" / "model" / "BPR.yaml").write_text(
        f"embedding_size: 64\nreg_weight: {reg_weight}\nhyper_parameters: ['reg_weight']\n"
    )
    for name, text in UTILS.items():
        (src / "utils" / name).write_text(textwrap.dedent(text))
    (src / "models" / "bpr.py").write_text(textwrap.dedent(MODEL))
    (src / "common" / "trainer.py").write_text(textwrap.dedent(TRAINER))
    return root


def mmrec_folder(path: Path, n_users: int = 40, n_items: int = 60, unused_item: bool = True, seed: int = 0) -> Path:
    """A tiny MMRec-layout folder (``tiny.inter``, both feature files, ``user_graph_dict.npy``);
    with ``unused_item`` the last item id appears in no interaction."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    used = n_items - 1 if unused_item else n_items
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    for u in range(n_users):
        items = rng.choice(used, size=8, replace=False)
        for k, i in enumerate(items):
            label = 0 if k < 6 else (1 if k == 6 else 2)
            lines.append(f"{u}\t{i}\t5\t{k}\t{label}")
    (path / "tiny.inter").write_text("\n".join(lines) + "\n")
    np.save(path / "text_feat.npy", rng.normal(size=(n_items, 8)).astype(np.float32))
    np.save(path / "image_feat.npy", np.abs(rng.normal(size=(n_items, 16))).astype(np.float32))
    graph = {u: [np.array([(u + 1) % n_users, (u + 2) % n_users]), np.array([3, 1])] for u in range(n_users)}
    np.save(path / "user_graph_dict.npy", np.array(graph, dtype=object), allow_pickle=True)
    return path
