"""Export of an edit: the changed tensors as safetensors plus a JSON run card."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from backends.contract import Backend
from backends.store import Edit

#: Packages whose versions go into every run card.
VERSIONED_PACKAGES = ("unlearning-lab", "torch", "numpy", "diffusers", "transformers", "open_clip_torch",
                      "gradio", "safetensors")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def changed_tensors(backend: Backend, base: Any, edited: Any) -> dict[str, Any]:
    """Tensors of ``edited`` that differ from ``base`` (new names count as changed)."""
    import torch

    before = backend.state_tensors(base)
    changed = {}
    for name, tensor in backend.state_tensors(edited).items():
        old = before.get(name)
        if old is None or old.shape != tensor.shape or not torch.equal(old.to(tensor.device), tensor):
            changed[name] = tensor.detach().to("cpu").clone()  # clone: tied weights must not share memory
    return changed


def export_dir() -> Path:
    """Server-side folder for exports (never chosen by a user)."""
    root = Path(os.environ.get("UNLEARNING_LAB_EXPORT_DIR", Path(tempfile.gettempdir()) / "unlearning-lab-exports"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def export_edit(backend: Backend, base: Any, edit: Edit, session: str) -> tuple[str, str]:
    """Write ``<name>.safetensors`` (changed tensors) and ``<name>.json`` (run card); return both paths."""
    from safetensors.torch import save_file

    tensors = changed_tensors(backend, base, edit.model)
    last = edit.runs[-1] if edit.runs else {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = "-".join(filter(None, [last.get("backend"), last.get("preset"), last.get("method")])) or "edit"
    session_tag = hashlib.sha256(session.encode()).hexdigest()[:8]  # the raw session id is never written
    folder = Path(tempfile.mkdtemp(prefix=f"{session_tag}-", dir=export_dir()))
    weights, card_path = folder / f"{slug}-{stamp}.safetensors", folder / f"{slug}-{stamp}.json"
    card = {
        "format": "unlearning-lab run card v1",
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": edit.runs,
        "changed_tensors": {name: list(t.shape) for name, t in tensors.items()},
        "versions": package_versions(),
    }
    save_file(tensors, str(weights), metadata={"run_card": json.dumps(card["runs"])[:60000]})
    card_path.write_text(json.dumps(card, indent=2, default=str))
    return str(weights), str(card_path)
