"""The tiny random checkpoints the demo's vision-language encoders load (meaningless features).

``results/models/tiny/<name>`` is built by the builder :data:`TINY` names, so the demo runs the real
``from_pretrained`` code paths of the CLIP, VLM2Vec, LVLM and captioning encoders without any download.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from ..errors import InputError

#: name -> (builder "module:function", the tiny model it is built on or None)
TINY: dict[str, tuple[str, str | None]] = {
    "clip": ("mmknockout.features.tiny:tiny_clip", None),
    "qwen2-vl": ("mmknockout.features.tiny_qwen:tiny_qwen2_vl", None),
    "qwen2-vl-lora": ("mmknockout.features.tiny_qwen:tiny_lora", "qwen2-vl"),
    "qwen2.5-vl": ("mmknockout.features.tiny_qwen:tiny_qwen2_5_vl", None),  # the VIRAL slice's captioner
    "llava": ("mmknockout.features.tiny_llava:tiny_llava", None),
}


def tiny_base(name: str) -> str | None:
    """The tiny model ``name`` is built on (a LoRA adapter's base), or None."""
    if name not in TINY:
        raise InputError(f"unknown tiny model '{name}'; known: {', '.join(TINY)}")
    return TINY[name][1]


def tiny_models_step(*, directory: str, name: str, base: str | None = None) -> None:
    """Workflow step: build tiny model ``name`` (on ``base``, the directory of its base model) into ``directory``."""
    if (tiny_base(name) is None) != (base is None):
        raise InputError(f"tiny model '{name}': a base directory is {'required' if base is None else 'not used'}")
    module, function = TINY[name][0].split(":")
    build = getattr(importlib.import_module(module), function)
    out = Path(directory)
    staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build(base, staging) if base is not None else build(staging)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
