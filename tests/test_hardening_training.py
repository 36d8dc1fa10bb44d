"""Issue 14, findings 1, 2 and 10: `python -m training.train` refuses bad configs, values and
checkpoints with one line and exit status 1 before anything heavy runs, and stops a diverged run.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ssr_core.errors import EXIT_BAD_INPUT, EXIT_MODEL_FAILURE
from training.checkpointing import ResumeError, check_rng_state, read_trainer_state
from training.train import NonFiniteLossError, check_finite, main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def base_config(tmp_path: Path) -> dict:
    train = tmp_path / "train.jsonl"
    train.write_text('{"id": "a", "frames": ["f.png"], "messages": [{"role": "user", "content": "q"}], "answer": "x"}\n')
    return {
        "stage": 1,
        "seed": 0,
        "output_dir": str(tmp_path / "run"),
        "model": {"base": "tiny", "num_frames": 4, "image_size": [56, 56]},
        "data": {"train": str(train)},
        "optim": {"lr": {"language": 1e-3}},
        "train": {"max_steps": 1, "device": "cpu"},
        "log": {"tensorboard": False},
    }


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err
    return status, err


def assert_one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def write_config(tmp_path: Path, cfg: dict | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize(
    "edit, needle",
    [
        ("missing-file", "nope.yaml"),
        ("text:stage: [1\n", "not valid YAML"),
        ("text:- 1\n- 2\n", "top level must be a mapping"),
        ("text:\xff\xfe", "config.yaml"),
        ({"train": {"max_steps": 1, "typo": 3}}, "typo"),
        ({"stage": None}, "stage"),
        ({"model": {"num_frames": 4, "image_size": [56, 56]}}, "model.base"),
        ({"model": {"base": "no/such/folder", "num_frames": 4, "image_size": [56, 56]}}, "no/such/folder"),
        ({"model": {"base": "Qwen/Qwen2.5-VL-7B-Instruct", "num_frames": 4, "image_size": [56, 56]}}, "not a local model folder"),
        ({"stage": 2, "model": {"vggt": "tiny", "num_frames": 4, "image_size": [56, 56]}, "optim": {"lr": {"branch_3d": 1e-3}}}, "init_from"),
        ({"seed": -1}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"train": {"device": "cpu", "num_workers": 1.5}}, "num_workers"),
        ({"data": {"train": "missing.jsonl"}}, "missing.jsonl"),
        ({"checkpoint": {"resume": "no/such/checkpoint"}}, "no/such/checkpoint"),
    ],
)
def test_config_mistakes_are_one_line_exit_1(tmp_path, capsys, edit, needle):
    cfg = base_config(tmp_path)
    if edit == "missing-file":
        path = tmp_path / "nope.yaml"
    elif isinstance(edit, str):
        path = tmp_path / "config.yaml"
        path.write_bytes(edit[len("text:"):].encode("latin-1"))
    else:
        for key, value in edit.items():
            if isinstance(value, dict) and key in cfg and key != "model":
                cfg[key] = {**cfg[key], **value}
            elif value is None:
                cfg.pop(key)
            else:
                cfg[key] = value
        path = write_config(tmp_path, cfg)
    status, err = run_main(["--config", str(path)], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "training.train: error:", needle)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_bad_input(tmp_path, capsys):
    path = write_config(tmp_path, base_config(tmp_path))
    status, err = run_main(["--config", str(path), "--set", "train.device=cuda"], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "train.device")


@pytest.mark.parametrize("override", ["nokey", "=3", "train..max_steps=3", "train.max_steps=[", "train=3"])
def test_bad_set_is_one_line(tmp_path, capsys, override):
    path = write_config(tmp_path, base_config(tmp_path))
    status, err = run_main(["--config", str(path), "--set", override], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "training.train: error:")


def test_output_dir_that_is_a_file(tmp_path, capsys):
    cfg = base_config(tmp_path)
    (tmp_path / "run").write_text("precious")
    status, err = run_main(["--config", str(write_config(tmp_path, cfg))], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "output_dir", str(tmp_path / "run"))
    assert (tmp_path / "run").read_text() == "precious"


@pytest.mark.parametrize("output_dir", ["blocker/run", "/proc/ssr_cannot_create"])
def test_unusable_output_dir(tmp_path, capsys, output_dir):
    cfg = base_config(tmp_path)
    (tmp_path / "blocker").write_text("a file")
    cfg["output_dir"] = output_dir if output_dir.startswith("/") else str(tmp_path / output_dir)
    status, err = run_main(["--config", str(write_config(tmp_path, cfg))], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "output_dir", cfg["output_dir"])


def test_bad_sample_file_is_one_line(tmp_path, capsys):
    cfg = base_config(tmp_path)
    Path(cfg["data"]["train"]).write_text("{not json\n")
    status, err = run_main(["--config", str(write_config(tmp_path, cfg))], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, "train.jsonl")


# ---------------------------------------------------------------------------- finding 2


@pytest.mark.parametrize(
    "override, needle",
    [
        ("optim.max_grad_norm=-1", "max_grad_norm"),
        ("optim.max_grad_norm=0", "max_grad_norm"),
        ("optim.max_grad_norm=.nan", "max_grad_norm"),
        ("optim.lr.language=.inf", "optim.lr.language"),
        ("optim.lr.language=.nan", "optim.lr.language"),
        ("optim.lr.language=true", "optim.lr.language"),
        ("optim.lr.language=1e999", "optim.lr.language"),
        ("optim.weight_decay=.nan", "weight_decay"),
        ("optim.weight_decay=-0.1", "weight_decay"),
        ("optim.weight_decay=true", "weight_decay"),
        ("optim.betas=[1.5, 0.9]", "betas"),
        ("optim.eps=0", "eps"),
        ("optim.warmup_ratio=.nan", "warmup_ratio"),
        ("output_dir=[a, b]", "output_dir"),
        ("output_dir=7", "output_dir"),
        ("model.base=[tiny]", "model.base"),
        ("train.deterministic=1", "deterministic"),
        ("train.max_steps=true", "max_steps"),
        ("model.spatial_layer=-2", "spatial_layer"),
    ],
)
def test_values_that_would_ruin_a_run_are_refused(tmp_path, capsys, override, needle):
    path = write_config(tmp_path, base_config(tmp_path))
    status, err = run_main(["--config", str(path), "--set", override], capsys)
    assert status == EXIT_BAD_INPUT
    assert_one_line(err, needle)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert not list(tmp_path.glob("[[]*"))  # no folder named "['a', 'b']"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_guard(value):
    with pytest.raises(NonFiniteLossError, match="optimiser step 4"):
        check_finite("loss", value, 3)
    check_finite("loss", 1.5, 3)


# ---------------------------------------------------------------------------- finding 10


def _write_state(folder: Path, **changes) -> None:
    state = {"global_step": 2, "epoch": 0, "position": 1, "seed": 0, "num_samples": 4, "batch_size": 1,
             "grad_accum": 1, "world_size": 1, "total_steps": 4}
    state.update(changes)
    (folder / "trainer_state.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    "changes",
    [{"position": -1}, {"global_step": "2"}, {"epoch": True}, {"extra": 1}, {"position": 1.5}],
)
def test_tampered_trainer_state_is_refused(tmp_path, changes):
    _write_state(tmp_path, **changes)
    with pytest.raises(ResumeError, match="trainer_state.json"):
        read_trainer_state(tmp_path)


def test_unreadable_trainer_state_is_refused(tmp_path):
    (tmp_path / "trainer_state.json").write_text("{")
    with pytest.raises(ResumeError, match="trainer_state.json"):
        read_trainer_state(tmp_path)


def _rng_file(folder: Path) -> Path:
    from accelerate.utils import save

    path = folder / "random_states_0.pkl"
    save({"random_state": random.getstate(), "numpy_random_seed": np.random.RandomState(0).get_state(),
          "torch_manual_seed": torch.get_rng_state()}, path)
    return path


def test_valid_rng_state_passes(tmp_path):
    _rng_file(tmp_path)
    check_rng_state(tmp_path, 0)


@pytest.mark.parametrize("damage", ["missing", "truncate", "garbage", "wrong-type", "bad-torch-state"])
def test_damaged_rng_state_is_refused(tmp_path, damage):
    from accelerate.utils import save

    path = _rng_file(tmp_path)
    if damage == "missing":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04not a pickle")
    elif damage == "wrong-type":
        save({"random_state": 3, "numpy_random_seed": np.random.RandomState(0).get_state(), "torch_manual_seed": torch.get_rng_state()}, path)
    else:
        save({"random_state": random.getstate(), "numpy_random_seed": np.random.RandomState(0).get_state(),
              "torch_manual_seed": torch.zeros(3, dtype=torch.uint8)}, path)
    with pytest.raises(ResumeError, match="random_states_0.pkl"):
        check_rng_state(tmp_path, 0)


# ---------------------------------------------------------------------------- end to end (tiny runs)


@pytest.fixture(scope="module")
def tiny_samples(tmp_path_factory) -> Path:
    from training.dataset import make_tiny_dataset

    return make_tiny_dataset(tmp_path_factory.mktemp("hardening_data"), num_scenes=2, seed=0, tasks=("vsibench",))


def tiny_run_config(tmp_path: Path, samples: Path, max_steps: int = 4) -> Path:
    cfg = base_config(tmp_path)
    cfg["data"] = {"train": str(samples / "train.jsonl")}
    cfg["train"] = {"max_steps": max_steps, "batch_size": 1, "device": "cpu", "deterministic": True}
    cfg["checkpoint"] = {"every_steps": 2, "keep_last": 3}
    return write_config(tmp_path, cfg)


@pytest.mark.slow
def test_resume_refuses_damaged_checkpoints(tiny_samples, tmp_path, capsys):
    """A run stopped at step 2 (SIGTERM hook) cannot resume from a tampered checkpoint: exit 1, no loop."""
    config = tiny_run_config(tmp_path, tiny_samples)
    import os

    os.environ["SSR_TRAIN_SIGTERM_AT_STEP"] = "2"
    try:
        assert main(["--config", str(config)]) == 0
    finally:
        del os.environ["SSR_TRAIN_SIGTERM_AT_STEP"]
    capsys.readouterr()
    checkpoint = tmp_path / "run" / "checkpoints" / "step_00000002"
    state_file = checkpoint / "trainer_state.json"
    good = state_file.read_text()
    state_file.write_text(json.dumps({**json.loads(good), "position": 10**6}))
    status, err = run_main(["--config", str(config)], capsys)
    assert status == EXIT_BAD_INPUT
    assert "position 1000000" in err.strip().splitlines()[-1] and "Traceback" not in err

    state_file.write_text(good)
    rng = checkpoint / "random_states_0.pkl"
    good_rng = rng.read_bytes()
    rng.write_bytes(good_rng[: len(good_rng) // 2])
    status, err = run_main(["--config", str(config)], capsys)
    assert status == EXIT_BAD_INPUT
    assert "random_states_0.pkl" in err.strip().splitlines()[-1]
    assert not (tmp_path / "run" / "final").exists()

    weights = checkpoint / "model.safetensors"
    assert weights.is_file()
    torch.save({"x": torch.zeros(1)}, rng)  # valid pickle, wrong contents
    status, err = run_main(["--config", str(config)], capsys)
    assert status == EXIT_BAD_INPUT and "random_states_0.pkl" in err

    # finding 9: a malicious optimizer state is refused unread, reported as bad input
    rng.write_bytes(good_rng)
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    torch.save({"state": Payload()}, checkpoint / "optimizer.bin")
    status, err = run_main(["--config", str(config)], capsys)
    last = err.strip().splitlines()[-1]
    assert status == EXIT_BAD_INPUT and "may be malicious" in last and "weights_only" not in err
    assert not marker.exists()
    weights.write_bytes(weights.read_bytes()[:100])  # truncated model weights
    status, err = run_main(["--config", str(config)], capsys)
    assert status == EXIT_BAD_INPUT and str(checkpoint) in err.strip().splitlines()[-1]


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_checkpoint(tiny_samples, tmp_path, capsys, monkeypatch):
    from ssr_core.model.modeling_ssr import SSRForConditionalGeneration

    forward = SSRForConditionalGeneration.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(SSRForConditionalGeneration, "forward", poisoned)
    status, err = run_main(["--config", str(tiny_run_config(tmp_path, tiny_samples))], capsys)
    assert status == EXIT_MODEL_FAILURE
    last = err.strip().splitlines()[-1]
    assert "model failure" in last and "loss became nan at optimiser step 3" in last
    assert (tmp_path / "run" / "checkpoints" / "step_00000002" / "trainer_state.json").is_file()
    assert not (tmp_path / "run" / "final").exists()
