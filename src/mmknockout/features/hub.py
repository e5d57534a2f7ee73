"""Hugging Face checkpoints of a config's encoders: which to fetch, and the fetch itself.

``snakemake fetch_models`` runs :func:`fetch_models_step` on a machine with internet (a login
node); compute nodes then load the same names from the cache with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from ..io import write_json

#: kinds without a checkpoint of their own
NO_CHECKPOINT = ("upstream", "concat")
#: the checkpoint of a vit/resnet encoder without ``model`` (mmknockout.features.vision)
VISION_DEFAULTS = {"vit": "google/vit-base-patch16-224-in21k", "resnet": "microsoft/resnet-50"}
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def repo_id(name: str, kind: str) -> str | None:
    """The hub repository of a model name, None for a local path (absolute, relative or existing)."""
    if name.startswith((".", "/", "~")) or os.path.exists(name) or not REPO_ID.match(name) or ".." in name:
        return None
    if kind == "sentence_transformers" and "/" not in name:
        return f"sentence-transformers/{name}"  # how sentence-transformers resolves a bare name
    return name


def checkpoints(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every hub checkpoint (model and adapter) the config's encoders load, each once, sorted,
    with its revision from ``hub.revisions`` (default main)."""
    revisions = (config.get("hub") or {}).get("revisions") or {}
    repos = set()
    for slot in ("text", "image"):
        for spec in config["encoders"].get(slot, {}).values():
            kind = spec.get("kind", "sentence_transformers")
            if kind in NO_CHECKPOINT:
                continue
            for name in (spec.get("model") or VISION_DEFAULTS.get(kind), spec.get("adapter")):
                repo = repo_id(name, kind) if name else None
                if repo:
                    repos.add(repo)
    return [{"repo_id": r, "revision": revisions.get(r, "main")} for r in sorted(repos)]


def fetch_models_step(*, checkpoints: list[dict[str, str]], record: str, cache_dir: str | None = None) -> None:
    """Workflow step: download every checkpoint into ``cache_dir`` (default Hugging Face's cache);
    ``record`` lists each repository, revision and local snapshot folder."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    fetched = []
    for entry in checkpoints:
        try:
            folder = snapshot_download(entry["repo_id"], revision=entry["revision"], cache_dir=cache_dir)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
            raise InputError(f"cannot fetch {entry['repo_id']}@{entry['revision']}: {exc}") from None
        fetched.append({**entry, "path": str(folder)})
        print(f"fetched {entry['repo_id']}@{entry['revision']} -> {folder}", flush=True)
    write_json(record, {"cache_dir": cache_dir, "checkpoints": fetched})
