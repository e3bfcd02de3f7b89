"""Where and how the backbone runs: device selection, precision (autocast), determinism.

``ComputeSpec`` is what a user asks for (``device="auto"``); ``ResolvedCompute`` is what a run
actually got (``cuda:0`` on an H100, say), and that is what outputs record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from histo_renn_dagster.core.errors import ComputeError

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,  # no autocast: the reference science
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


DECODE_SITES = ("host", "device")


@dataclass(frozen=True)
class ComputeSpec:
    """Requested compute: ``device`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>``."""

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 32
    workers: int = 0  # DataLoader worker processes decoding JPEG tiles; 0 decodes in-process
    deterministic: bool = False
    # Where JPEG tiles are decoded: "host" (CPU, in the loader) or "device" (torchvision's
    # decode_jpeg on the compute device: nvJPEG on CUDA, so CPU cores stop limiting a fast GPU).
    decode: str = "host"

    def __post_init__(self) -> None:
        if self.decode not in DECODE_SITES:
            raise ComputeError(f"decode {self.decode!r} is not one of {list(DECODE_SITES)}")
        if self.precision not in PRECISIONS:
            raise ComputeError(f"precision {self.precision!r} is not one of {sorted(PRECISIONS)}")
        if self.batch_size < 1:
            raise ComputeError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 0:
            raise ComputeError(f"workers must be >= 0, got {self.workers}")
        _parse_device(self.device)


@dataclass(frozen=True)
class ResolvedCompute:
    """The device and settings a run actually uses (recorded in every output)."""

    device: torch.device
    device_name: str  # e.g. "cpu" or "NVIDIA H100 80GB HBM3"
    precision: str
    batch_size: int
    workers: int
    deterministic: bool
    decode: str = "host"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return PRECISIONS[self.precision]

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def as_record(self) -> dict[str, object]:
        return {
            "device": str(self.device),
            "device_name": self.device_name,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "deterministic": self.deterministic,
            "decode": self.decode,
        }


def _parse_device(text: str) -> tuple[str, int | None]:
    if text in ("auto", "cpu", "cuda"):
        return text, None
    kind, _, index = text.partition(":")
    if kind == "cuda" and index.isdigit():
        return kind, int(index)
    raise ComputeError(f"device {text!r} is not one of auto, cpu, cuda, cuda:<index>")


def resolve_compute(spec: ComputeSpec) -> ResolvedCompute:
    """Pick the device (``auto``: the first CUDA device when present, else the CPU) and check that
    the requested device and precision exist here."""
    kind, index = _parse_device(spec.device)
    if kind == "auto":
        kind, index = ("cuda", 0) if torch.cuda.is_available() else ("cpu", None)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ComputeError(f"device {spec.device!r} requested but CUDA is not available here")
        index = torch.cuda.current_device() if index is None else index
        if index >= torch.cuda.device_count():
            raise ComputeError(
                f"device cuda:{index} requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
        device = torch.device("cuda", index)
        name = torch.cuda.get_device_name(device)
        if spec.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ComputeError(f"precision bf16 requested but {name} does not support bfloat16")
    else:
        device, name = torch.device("cpu"), "cpu"
    return ResolvedCompute(
        device=device,
        device_name=name,
        precision=spec.precision,
        batch_size=spec.batch_size,
        workers=spec.workers,
        deterministic=spec.deterministic,
        decode=spec.decode,
    )


def autocast(compute: ResolvedCompute) -> contextlib.AbstractContextManager[object]:
    """Mixed precision for the backbone only; fp32 runs without autocast."""
    dtype = compute.autocast_dtype
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=compute.device.type, dtype=dtype)


@contextlib.contextmanager
def determinism(compute: ResolvedCompute) -> Iterator[None]:
    """Deterministic kernels when asked (else cuDNN autotuning, since tile shapes never change);
    the process-wide torch flags are restored afterwards."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if compute.deterministic and compute.is_cuda:
        # cuBLAS needs this before its first handle is created to be reproducible.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(compute.deterministic)
    torch.backends.cudnn.benchmark = compute.is_cuda and not compute.deterministic
    torch.backends.cudnn.deterministic = compute.deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.backends.cudnn.deterministic = saved[2]
