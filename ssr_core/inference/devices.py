"""Device and dtype selection for CUDA, Ascend NPU and CPU.

`torch_npu` is imported only when the NPU is chosen (explicitly or by `auto` after CUDA was not
found), so CUDA and CPU machines never need it. Nothing here calls a CUDA-only API unless the
chosen device is CUDA.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch

DEVICE_NAMES = ("auto", "cuda", "npu", "cpu")


class DeviceUnavailableError(RuntimeError):
    """The requested accelerator is not usable on this machine."""


def _import_torch_npu() -> None:
    """Import `torch_npu` (it registers the `npu` device type with torch) or explain what is missing."""
    try:
        importlib.import_module("torch_npu")
    except ImportError as exc:
        raise DeviceUnavailableError(
            "device 'npu' needs the Ascend PyTorch adapter: install torch_npu matching your torch and "
            "CANN versions (pip install torch-npu) and source the CANN set_env.sh"
        ) from exc


def _npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    try:
        _import_torch_npu()
    except DeviceUnavailableError:
        return False
    npu = getattr(torch, "npu", None)
    return bool(npu is not None and npu.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Map "auto" | "cuda[:i]" | "npu[:i]" | "cpu" to a usable `torch.device`.

    "auto" prefers CUDA, then an Ascend NPU (only if torch_npu imports), then CPU. Explicit
    accelerator names raise `DeviceUnavailableError` when the device cannot be used.
    """
    if isinstance(name, torch.device):
        name = str(name)
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_NAMES:
        raise ValueError(
            f"unknown device {name!r}; expected one of {DEVICE_NAMES} (optionally with ':index')"
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _npu_available():
            return torch.device("npu")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("device 'cuda' requested but torch.cuda.is_available() is False")
    if kind == "npu":
        _import_torch_npu()
        npu = getattr(torch, "npu", None)
        if npu is None or not npu.is_available():
            raise DeviceUnavailableError("torch_npu is installed but no Ascend NPU is available")
    return torch.device(name)


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """bfloat16 on accelerators, float32 on CPU, unless `dtype` overrides it."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)}")
        return _DTYPES[dtype]
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for timing); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "npu":
        torch.npu.synchronize(device)  # type: ignore[attr-defined]


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak allocated accelerator memory since the last reset, or None on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "npu":
        return int(torch.npu.max_memory_allocated(device))  # type: ignore[attr-defined]
    return None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type == "npu":
        torch.npu.reset_peak_memory_stats(device)  # type: ignore[attr-defined]
