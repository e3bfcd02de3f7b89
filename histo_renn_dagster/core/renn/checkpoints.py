"""Atomic checkpoint files: torch.save into a temp file in the same folder, then os.replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.core.errors import RennError


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, arrays, plain values) to ``path``; never half-written."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    if not path.is_file():
        raise RennError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the payload holds numpy arrays and plain records we wrote ourselves
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise RennError(f"checkpoint {path} is unreadable: {exc}") from exc
