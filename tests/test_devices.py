import sys

import pytest
import torch

from ssr_core.inference import devices


def test_cpu_and_dtype():
    dev = devices.resolve_device("cpu")
    assert dev == torch.device("cpu")
    assert devices.resolve_dtype(dev) == torch.float32
    assert devices.resolve_dtype(dev, "bf16") == torch.bfloat16
    assert devices.resolve_dtype(torch.device("cuda"), None) == torch.bfloat16
    assert devices.resolve_dtype(torch.device("cuda"), torch.float16) == torch.float16
    with pytest.raises(ValueError):
        devices.resolve_dtype(dev, "int8")


def test_auto_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # makes `import torch_npu` fail
    assert devices.resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")


def test_npu_without_torch_npu_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(devices.DeviceUnavailableError, match="torch_npu"):
        devices.resolve_device("npu")


def test_unavailable_cuda_and_unknown_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceUnavailableError):
        devices.resolve_device("cuda")
    with pytest.raises(ValueError):
        devices.resolve_device("tpu")


def test_cpu_helpers_are_noops():
    cpu = torch.device("cpu")
    devices.synchronize(cpu)
    devices.reset_peak_memory(cpu)
    assert devices.peak_memory_bytes(cpu) is None
