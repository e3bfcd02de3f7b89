"""Backbone weights: where they come from, their sha256 check, and loading them into a model.

Three sources, chosen by ``weights``:

- ``pretrained``: the backbone's published checkpoint, found in the framework's cache
  (torchvision: ``$TORCH_HOME/hub/checkpoints/<file>``; default ``~/.cache/torch``). Nothing is
  ever downloaded: a missing file is an error that says which file to put where.
- a file path: a state dict saved with ``torch.save``, checked against a recorded sha256 (given
  explicitly, or in a ``<file>.sha256`` sidecar, or the hash prefix in a torch-hub style name
  ``name-<hex>.pth``).
- ``random``: seeded random initialisation, only when asked for by name; recorded everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from histo_renn_dagster.core.errors import WeightsError

RANDOM = "random"
PRETRAINED = "pretrained"
# torch.hub's convention: the file name ends in "-<first hex digits of its sha256>.<ext>".
_HUB_HASH = re.compile(r"-([a-f0-9]{8,64})\.")
_HEX = re.compile(r"[a-f0-9]{8,64}")


@dataclass(frozen=True)
class WeightsInfo:
    """Where a loaded backbone's weights came from (recorded in every output)."""

    kind: str  # "pretrained" | "file" | "random"
    source: str  # human-readable origin, e.g. "torchvision cache" or "random init (seed 0)"
    path: str | None = None
    sha256: str | None = None

    def as_record(self) -> dict[str, str]:
        return {
            "weights": self.kind,
            "weights_source": self.source,
            "weights_path": self.path or "",
            "weights_sha256": self.sha256 or "",
        }


def random_weights(seed: int) -> WeightsInfo:
    return WeightsInfo(kind=RANDOM, source=f"random init (seed {seed})")


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Seed torch's global generator for model construction without disturbing the caller's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_sha256(path: Path, given: str | None = None) -> str | None:
    """The sha256 (or hub-style prefix) a weights file must match: ``given``, else the first word
    of ``<file>.sha256``, else the hash in a torch-hub style file name; None when none exists."""
    if given:
        expected = given.strip().lower()
    else:
        sidecar = path.with_name(path.name + ".sha256")
        if sidecar.is_file():
            words = sidecar.read_text(encoding="utf-8").split()
            expected = words[0].lower() if words else ""
        else:
            match = _HUB_HASH.search(path.name)
            return match.group(1) if match else None
    if not _HEX.fullmatch(expected):
        raise WeightsError(
            f"{path}: recorded sha256 {expected!r} is not 8 to 64 lower-case hex digits"
        )
    return expected


def verify_weights_file(path: Path, expected: str | None) -> str:
    """The file's sha256 after checking it starts with ``expected`` (full hash or hub prefix)."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if expected is None:
        raise WeightsError(
            f"weights file {path} has no recorded sha256: pass it (weights_sha256 / "
            f"--weights-sha256) or write it to {path.name}.sha256 beside the file "
            f"(`sha256sum {path.name} > {path.name}.sha256`)"
        )
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise WeightsError(f"weights file {path}: sha256 is {actual}, expected {expected}")
    return actual


def torch_hub_checkpoint(url: str) -> Path:
    """Where torchvision keeps the checkpoint published at ``url`` (honours ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def missing_pretrained_message(backbone: str, url: str) -> str:
    target = torch_hub_checkpoint(url)
    return (
        f"{backbone}: pretrained weights not found at {target}. Put {target.name} "
        f"(published at {url}; this code never downloads) in {target.parent} "
        "(set TORCH_HOME to move that folder), or pass an explicit weights file path, "
        "or use weights: random for untrained features"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path``; plain, or wrapped in ``{"state_dict"|"model": ...}``; tensors
    only (``weights_only``: a weights file never runs code)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"weights file {path} is not a readable torch state dict: {exc}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    # Checkpoints saved from DataParallel/DistributedDataParallel prefix every key.
    return {k.removeprefix("module."): v for k, v in obj.items()}


def apply_state_dict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    head_prefixes: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``model``; only keys under ``head_prefixes`` (heads that are removed
    anyway) may be missing or extra. Anything else means the file is for another architecture."""

    def is_head(key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in head_prefixes)

    own = model.state_dict()
    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = [k for k in state if k not in own and not is_head(k)]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{source} does not fit the architecture: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), "
            f"wrong shape {wrong[:5]} ({len(wrong)})"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
