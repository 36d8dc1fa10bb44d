"""Issue 14, finding 9: malicious, truncated, NaN or complex weight files are bad input
(`VGGTCheckpointError` / `ResumeError`, exit 1) naming the file, never torch's advice to retry with
weights_only=False, and never code from the file run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ssr_core.errors import InputError
from ssr_core.model.tiny import TINY_VGGT_CONFIG
from ssr_core.model.vggt import VGGTAggregator, VGGTCheckpointError, VGGTConfig, load_vggt_aggregator

CONFIG = VGGTConfig(**TINY_VGGT_CONFIG)


class _Payload:
    """Unpickling this would create a marker file: the proof that code from a checkpoint ran."""

    marker = ""

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in VGGTAggregator(CONFIG).state_dict().items()}


def _first_float(state: dict[str, torch.Tensor]) -> str:
    return next(k for k, v in state.items() if v.is_floating_point())


def make_file(kind: str, folder: Path, state: dict[str, torch.Tensor]) -> Path:
    pt, st = folder / "model.pt", folder / "model.safetensors"
    key = _first_float(state)
    if kind == "malicious":
        payload = _Payload()
        payload.marker = str(folder / "PWNED")
        torch.save({key: payload}, pt)
        return pt
    if kind in ("truncated-pt", "empty-pt", "garbage-pt"):
        torch.save(state, pt)
        raw = pt.read_bytes()
        pt.write_bytes({"truncated-pt": raw[: len(raw) // 2], "empty-pt": b"", "garbage-pt": b"\x80\x02junk" * 9}[kind])
        return pt
    if kind in ("truncated-st", "header-st"):
        save_file(state, str(st))
        raw = st.read_bytes()
        st.write_bytes(raw[: len(raw) // 2] if kind == "truncated-st" else b"\xff" * 8 + raw[8:])
        return st
    changed = dict(state)
    if kind == "nan":
        changed[key] = torch.full_like(state[key], float("nan"))
    elif kind == "inf":
        changed[key] = state[key].clone()
        changed[key].view(-1)[0] = float("inf")
    elif kind == "complex":
        changed[key] = state[key].to(torch.complex64)
    elif kind == "integer":
        changed[key] = state[key].to(torch.int32)
    torch.save(changed, pt)
    return pt


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("malicious", "may be malicious"),
        ("garbage-pt", "model.pt: it"),
        ("truncated-pt", "truncated"),
        ("empty-pt", "truncated"),
        ("truncated-st", "truncated"),
        ("header-st", "model.safetensors"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("complex", "not real floating-point"),
        ("integer", "not real floating-point"),
    ],
)
def test_bad_vggt_weights_are_input_errors_naming_the_file(tmp_path, state, kind, needle):
    path = make_file(kind, tmp_path, state)
    with pytest.raises(VGGTCheckpointError) as info:
        load_vggt_aggregator(path, CONFIG)
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert str(path) in message and needle in message and "\n" not in message
    assert "weights_only" not in message  # torch's advice to disable the safe loader is never passed on
    assert not (tmp_path / "PWNED").exists()


def test_good_weights_still_load(tmp_path, state):
    save_file(state, str(tmp_path / "model.safetensors"))
    model = load_vggt_aggregator(tmp_path, CONFIG)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from ssr_core.model.tiny import build_tiny_ssr, build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny_ssr") / "ckpt"
    build_tiny_ssr(variant="2d", num_frames=2).save_pretrained(folder)
    build_tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.slow  # builds and saves a tiny SSR
@pytest.mark.parametrize("damage, needle", [("truncated", "not a readable checkpoint"), ("malicious", "may be malicious")])
def test_ssr_eval_run_reports_bad_weights_as_bad_input(tiny_checkpoint, tmp_path, capsys, damage, needle):
    """`ssr eval run` on damaged weights: exit 1 (not 3, "the model failed"), no torch advice, no code run."""
    import shutil

    from ssr_core.commands.main import main as ssr_main

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.unlink()
        payload = _Payload()
        payload.marker = str(tmp_path / "PWNED")
        torch.save({"x": payload}, folder / "pytorch_model.bin")
    frame = tmp_path / "f.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(frame)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": 1, "question_type": "object_counting", "question": "How many?", "ground_truth": 2, "frames": ["f.png"]}\n')
    status = ssr_main(["eval", "run", "--checkpoint", str(folder), "--data", str(qa), "--device", "cpu"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert status == 1 and str(folder) in last and needle in last, err
    assert "weights_only" not in err and not (tmp_path / "PWNED").exists()
