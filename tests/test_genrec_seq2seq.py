"""The seq2seq recommender: a tiny T5 overfits planted sequences, a killed run resumes exactly, and
whole runs (semantic IDs under every knockout kind, then a variant) write the ranking runs' record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmknockout.data.sequential import loo_split
from mmknockout.genrec.beam import PrefixTrie, constrained_beam_search
from mmknockout.genrec.run import train_genrec
from mmknockout.genrec.seq2seq import FitSettings, Stage, T5Settings, build_t5, fit
from mmknockout.genrec.sids import fuse, semantic_ids_step
from mmknockout.genrec.tokens import TokenLayout

TINY = T5Settings(d_model=32, num_layers=1, num_heads=2, d_kv=16, d_ff=64, dropout=0.0)


def settings(**over) -> FitSettings:
    base = dict(
        learning_rate=3e-3,
        weight_decay=0.0,
        batch_size=32,
        warmup_steps=5,
        eval_every=1000,
        checkpoint_every=1000,
        seed=0,
        valid_metric="HitRate@1",
    )
    return FitSettings(**{**base, **over})


def planted_task(n_items: int = 10):
    """Item i is always followed by item (i + 1) mod n; IDs of two codes and a dedup digit."""
    layout = TokenLayout.of("TIGER-text", levels=2, codebook_size=4, dedup_size=1)
    codes = np.stack([np.arange(n_items) // 4, np.arange(n_items) % 4], axis=1)
    tokens = layout.item_tokens({"text": codes})
    rng = np.random.default_rng(0)
    hist = rng.integers(0, n_items, size=(200, 1))
    target = (hist[:, 0] + 1) % n_items
    inputs = layout.history_inputs(tokens, hist, np.zeros(len(hist), np.int64))
    return layout, tokens, inputs, target


def top1(model, inputs, tokens):
    trie = PrefixTrie.build(tokens, np.arange(len(tokens)))
    x = torch.as_tensor(inputs)
    with torch.no_grad():
        return constrained_beam_search(model.eval(), x, x != 0, trie, beams=3)[:, 0].numpy()


def test_tiny_t5_overfits_planted_sequences():
    layout, tokens, inputs, target = planted_task()
    model = build_t5(layout.vocab_size, TINY, seed=0)
    before = (top1(model, inputs[:50], tokens) == target[:50]).mean()
    stage = Stage("rec", inputs, tokens[target], steps=150, evaluate=False)
    result, state = fit(model, [stage], settings(), lambda m: {}, torch.device("cpu"))
    model.load_state_dict(state)
    after = (top1(model, inputs[:50], tokens) == target[:50]).mean()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert before < 0.5 and after == 1.0


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    layout, tokens, inputs, target = planted_task()
    stages = [Stage("rec", inputs, tokens[target], steps=20, evaluate=True)]
    cfg = settings(checkpoint_every=10, eval_every=15)
    torch_dev = torch.device("cpu")
    tiny = T5Settings(d_model=32, num_layers=1, num_heads=2, d_kv=16, d_ff=64, dropout=0.2)  # dropout draws resume too

    def validate(model):
        return {"HitRate@1": 0.5}

    straight, _ = fit(build_t5(layout.vocab_size, tiny, 0), stages, cfg, validate, torch_dev)
    reference = build_t5(layout.vocab_size, tiny, 0)
    fit(reference, stages, cfg, validate, torch_dev)

    def killed(model):
        raise KeyboardInterrupt

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(build_t5(layout.vocab_size, tiny, 0), stages, cfg, killed, torch_dev, ckpt, "run-a")
    resumed_model = build_t5(layout.vocab_size, tiny, 0)
    resumed, _ = fit(resumed_model, stages, cfg, validate, torch_dev, ckpt, "run-a")
    assert resumed.resumed_from == 10 and resumed.steps_run == straight.steps_run
    for a, b in zip(reference.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    other = fit(build_t5(layout.vocab_size, tiny, 0), stages, cfg, validate, torch_dev, ckpt, "run-b")[0]
    assert other.resumed_from is None  # another run's checkpoint is not resumed


def test_run_killed_after_the_alignment_stage_resumes_exactly(tmp_path):
    layout, tokens, inputs, target = planted_task()
    stages = [
        Stage("align", inputs, tokens[(target + 3) % len(tokens)], steps=10, evaluate=False),
        Stage("rec", inputs, tokens[target], steps=10, evaluate=True),
    ]
    cfg = settings(checkpoint_every=10, eval_every=5)
    device = torch.device("cpu")

    def validate(model):
        return {"HitRate@1": 0.5}

    def killed(model):
        raise KeyboardInterrupt

    reference = build_t5(layout.vocab_size, TINY, 0)
    fit(reference, stages, cfg, validate, device)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):  # the last checkpoint is the end of the alignment stage
        fit(build_t5(layout.vocab_size, TINY, 0), stages, cfg, killed, device, ckpt, "run")
    resumed_model = build_t5(layout.vocab_size, TINY, 0)
    resumed, _ = fit(resumed_model, stages, cfg, validate, device, ckpt, "run")
    assert resumed.resumed_from == 10
    for a, b in zip(reference.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_fuse_mean_and_concat():
    t, i = np.array([[3.0, 4.0]]), np.array([[0.0, 2.0]])
    np.testing.assert_allclose(fuse(t, i, "mean"), [[0.3, 0.9]])
    np.testing.assert_allclose(fuse(t, i, "concat"), [[0.6, 0.8, 0.0, 1.0]])
    with pytest.raises(Exception, match="one size"):
        fuse(t, np.ones((1, 3)), "mean")


RQ = dict(
    hidden=[16],
    latent=8,
    levels=2,
    codebook_size=8,
    beta=0.25,
    learning_rate=1e-3,
    weight_decay=0.01,
    batch_size=32,
    steps=30,
)
S2S = dict(
    mode="scratch",
    d_model=16,
    num_layers=1,
    num_heads=2,
    d_kv=8,
    d_ff=32,
    dropout=0.1,
    max_history=4,
    user_buckets=8,
    batch_size=32,
    steps=12,
    align_steps=6,
    warmup_steps=2,
    weight_decay=0.0,
    eval_every=6,
    checkpoint_every=6,
    beams=20,
    eval_batch_size=16,
)
RANKING_KEYS = {
    "dataset",
    "feature_set",
    "model",
    "condition",
    "params_id",
    "params",
    "seed",
    "status",
    "best_epoch",
    "epochs_run",
    "diverged",
    "diverged_epoch",
    "valid",
    "test",
    "stop_reason",
    "stop_epoch",
    "training",
    "seconds",
    "environment",
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("genrec")
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 40
    rows = [(u, int(i), t) for u in range(n_users) for t, i in enumerate(rng.choice(n_items, 6, replace=False))]
    df = pd.DataFrame(rows, columns=["userID", "itemID", "timestamp"]).assign(rating=5.0, x_label=0)
    loo_split(df).to_csv(root / "d.seq.inter", sep="\t", index=False)
    np.save(root / "text.npy", rng.normal(size=(n_items, 12)).astype(np.float32))
    np.save(root / "image.npy", rng.normal(size=(n_items, 20)).astype(np.float32))
    pd.DataFrame({"asin": [f"A{i}" for i in range(n_items)], "itemID": range(n_items)}).to_csv(
        root / "map.csv", sep="\t", index=False
    )
    return root


CONDITIONS = {
    "baseline": {},
    "image-noise": {"image": "noise"},
    "dual-ones": {"text": "ones", "image": "ones"},
    "text-mean": {"text": "mean"},
    "image-shuffle": {"image": "shuffle"},
    "dual-zeros": {"text": "zeros", "image": "zeros"},
}


def make_codes(root, condition: str) -> dict[str, np.ndarray]:
    """The text, image and fused semantic IDs of the tiny data under ``condition`` (written once)."""
    out = {}
    for kind in ("text", "image", "fused"):
        codes = root / f"{condition}_{kind}.npy"
        if not codes.exists():
            semantic_ids_step(
                text=str(root / "text.npy"),
                image=str(root / "image.npy"),
                codes=str(codes),
                sid_stats=str(root / f"{condition}_{kind}.json"),
                kind=kind,
                condition=condition,
                condition_spec=CONDITIONS[condition],
                rqvae=RQ,
                fusion="concat",
                seed=0,
                device="cpu",
            )
        out[kind] = np.load(codes)
    return out


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_semantic_ids_under_every_knockout(tiny_data, condition):
    out = make_codes(tiny_data, condition)
    for kind, codes in out.items():
        stats = json.loads((tiny_data / f"{condition}_{kind}.json").read_text())
        assert np.isfinite(stats["loss_last"]) and codes.shape == (40, 2)
        assert (codes >= 0).all() and (codes < 8).all()
    if condition in ("dual-ones", "dual-zeros"):
        assert all(len(np.unique(c, axis=0)) == 1 for c in out.values())  # every item on one prefix
    if condition == "image-noise":  # the text IDs do not see the image knockout
        np.testing.assert_array_equal(out["text"], make_codes(tiny_data, "baseline")["text"])


@pytest.mark.parametrize("variant", ["MGR-LF++", "MGR-EF", "TIGER-image"])
def test_variant_run_writes_the_ranking_record(tiny_data, variant):
    codes = make_codes(tiny_data, "dual-ones" if variant == "MGR-EF" else "baseline")
    spec = dict(
        dataset="d",
        feature_set="fs",
        variant=variant,
        condition="baseline",
        params_id="learning_rate~0.001",
        params={"learning_rate": 1e-3},
        seed=0,
        device="cpu",
        seq2seq=S2S,
        topk=[5, 10, 20],
        valid_metric="NDCG@20",
        codebook_size=8,
    )
    run = tiny_data / variant
    rec = train_genrec(
        spec,
        seq_inter=tiny_data / "d.seq.inter",
        codes=codes,
        metrics=run / "metrics.json",
        history=run / "history.csv",
        per_user_file=run / "per_user.npz",
        predictions=run / "pred.npz",
        checkpoint=run / "checkpoint.pt",
    )
    assert RANKING_KEYS <= set(rec) and json.loads((run / "metrics.json").read_text())["model"] == variant
    assert not (run / "checkpoint.pt").exists()  # written every 6 steps, removed once the record is written
    assert rec["status"] == "ok" and set(rec["test"]) >= {"MRR@5", "NDCG@10", "HitRate@20"}
    assert all(np.isfinite(v) for v in rec["test"].values())
    pred = np.load(run / "pred.npz")
    assert pred["items"].shape == (30, 20)
    for row in pred["items"]:
        valid = row[row >= 0]
        assert len(set(valid)) == len(valid)  # each item at most once
    assert rec["steps_run"] == S2S["steps"] + (S2S["align_steps"] if variant == "MGR-LF++" else 0)
    if variant == "MGR-EF":  # constant features: one prefix, the dedup digit tells 40 items apart
        assert rec["semantic_ids"]["dedup_size"] == 40


def test_pretrained_mode_prompts_golden(tmp_path):
    from mmknockout.genrec.encoding import PromptEncoding
    from mmknockout.genrec.tiny_t5 import tiny_t5

    layout = TokenLayout.of("MGR-LF++", levels=2, codebook_size=4, dedup_size=1, user_buckets=3)
    enc = PromptEncoding(str(tiny_t5(tmp_path / "t5")), layout)
    text, image = np.array([[1, 0], [2, 3]]), np.array([[0, 1], [2, 2]])
    inputs, targets = enc.alignment_examples({"text": text, "image": image})
    words = enc.tokenizer.convert_ids_to_tokens
    assert words(inputs[0]) == (
        "Here we have an item with image id <img-1-0> <img-2-1> . Please predict its corresponding text id .".split()
    )
    assert words(targets[0]) == ["<txt-1-1>", "<txt-2-0>"] and words(targets[2]) == ["<img-1-0>", "<img-2-1>"]
    assert words(inputs[2])[6:8] == ["text", "id"]
    items = layout.item_tokens({"text": text, "image": image})
    history = enc.history_inputs(items, np.array([[-1, 1]]), np.array([0]))
    expected = (
        "Here is the purchase history of a user : <txt-1-2> <txt-2-3> <s-1> <img-1-2> <img-2-2> <dd-0> . "
        "Please predict the next item ."
    )
    assert [w for w in words(history[0]) if w != "<pad>"] == expected.split()
    assert enc.model(0).get_input_embeddings().weight.shape[0] == len(enc.tokenizer)


def test_pretrained_mode_runs_end_to_end(tiny_data, tmp_path):
    from mmknockout.genrec.tiny_t5 import tiny_t5

    codes = make_codes(tiny_data, "baseline")
    s2s = {**S2S, "mode": "pretrained", "model": str(tiny_t5(tmp_path / "t5"))}
    spec = dict(
        dataset="d",
        feature_set="fs",
        variant="MGR-LF++",
        condition="baseline",
        params_id="learning_rate~0.001",
        params={"learning_rate": 1e-3},
        seed=0,
        device="cpu",
        seq2seq=s2s,
        topk=[5, 10, 20],
        valid_metric="NDCG@20",
        codebook_size=8,
    )
    run = tmp_path / "run"
    rec = train_genrec(
        spec,
        seq_inter=tiny_data / "d.seq.inter",
        codes=codes,
        metrics=run / "metrics.json",
        history=run / "history.csv",
        per_user_file=run / "per_user.npz",
        predictions=run / "pred.npz",
    )
    items = np.load(run / "pred.npz")["items"]
    assert rec["status"] == "ok" and ((items >= 0) & (items < 40)).all()
    assert all(len(set(row)) == len(row) for row in items)


def test_sasrec_baseline_runs_and_ranks_valid_items(tiny_data, tmp_path):
    spec = dict(
        dataset="d",
        feature_set="fs",
        variant="SASRec",
        condition="baseline",
        params_id="learning_rate~0.001",
        params={"learning_rate": 1e-3},
        seed=0,
        device="cpu",
        seq2seq=S2S,
        topk=[5, 10, 20],
        valid_metric="NDCG@20",
        codebook_size=8,
        sasrec={"hidden": 8, "blocks": 1, "heads": 1, "dropout": 0.2, "max_len": 4},
    )
    run = tmp_path / "sasrec"
    rec = train_genrec(
        spec,
        seq_inter=tiny_data / "d.seq.inter",
        codes={},
        metrics=run / "metrics.json",
        history=run / "history.csv",
        per_user_file=run / "per_user.npz",
        predictions=run / "pred.npz",
    )
    items = np.load(run / "pred.npz")["items"]
    assert rec["status"] == "ok" and rec["semantic_ids"] is None and rec["hits_by_part"] == {}
    assert items.shape == (30, 20) and all(len(set(row)) == 20 for row in items)
    seen = set(pd.read_csv(tiny_data / "d.seq.inter", sep="\t")["itemID"])
    assert set(items.ravel()) <= seen


def test_sasrec_state_ignores_padding_and_future():
    from mmknockout.genrec.sasrec import SASRec, SASRecSettings

    torch.manual_seed(0)
    model = SASRec(10, SASRecSettings(hidden=8, blocks=2, heads=2, dropout=0.0, max_len=5)).eval()
    a = torch.tensor([[0, 0, 3, 4, 5]])
    b = torch.tensor([[0, 7, 3, 4, 5]])
    ha, hb = model.last_state(a), model.last_state(b)
    assert torch.isfinite(ha).all()
    assert not torch.allclose(ha, hb)  # the extra item is read
    torch.testing.assert_close(model.last_state(torch.tensor([[3, 4, 5]])), ha)  # padding is not
    x = torch.tensor([[0, 0, 3, 4, 5]])
    loss = model(x, x != 0, torch.tensor([[2]])).loss
    loss.backward()
    assert torch.isfinite(loss) and model.items.weight.grad.abs().sum() > 0
