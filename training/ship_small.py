"""Package a trained small SSR-3D as a relocatable folder with its aggregator and a regression reference.

    python -m training.ship_small --checkpoint RUN/stage2/final --aggregator RUN/geometry/aggregator \\
        --heldout RUN/samples_heldout/eval.jsonl --out models/ssr3d_small

The folder gets the SSR checkpoint, `aggregator/` (weights + `vggt_config.json`) with
`ssr_config.json`'s `vggt_path` set to `aggregator/model.safetensors` (relative paths are resolved
against the checkpoint folder), and `regression.json`: the questions of a few held-out windows,
how to re-render their frames (scene seed, frame count and size), and the model's answers on
CPU in float32, which `tests/test_shipped_small_model.py` reproduces.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ssr_core.data.synthetic.dataset import scene_seed
from training.small import VGGT_CONFIG_FILE, VGGT_WEIGHTS_FILE

AGGREGATOR_DIR = "aggregator"
REGRESSION_FILE = "regression.json"
MAX_BYTES = 30 * 1024 * 1024
#: How the held-out scenes of scripts/train_small.sh are rendered (scene k: seed (HELDOUT_SEED, k)).
HELDOUT_SEED, FRAMES, WIDTH, HEIGHT = 1000, 64, 168, 112


def package(checkpoint: Path, aggregator: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(checkpoint, out)
    (out / AGGREGATOR_DIR).mkdir()
    for name in (VGGT_WEIGHTS_FILE, VGGT_CONFIG_FILE):
        shutil.copy2(aggregator / name, out / AGGREGATOR_DIR / name)
    config_file = out / "ssr_config.json"
    config = json.loads(config_file.read_text())
    config["vggt_path"] = f"{AGGREGATOR_DIR}/{VGGT_WEIGHTS_FILE}"
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def regression_reference(model_dir: Path, heldout: Path, windows: int) -> dict:
    """The first `windows` held-out windows' questions and the packaged model's answers to them."""
    from ssr_core.evaluation.evaluate import predict, read_samples
    from ssr_core.inference.generation import SSRGenerator

    rows = [json.loads(line) for line in heldout.open()]
    chosen: list[str] = []
    for row in rows:
        if row["window"] not in chosen and len(chosen) < windows:
            chosen.append(row["window"])
    rows = [r for r in rows if r["window"] in chosen]
    tmp = heldout.parent / ".regression_questions.jsonl"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        samples = read_samples(tmp, heldout.parent)
        generator = SSRGenerator.from_checkpoint(model_dir, device="cpu")
        predictions = predict(samples, generator)
    finally:
        tmp.unlink()
    scenes = sorted({r["scene_id"] for r in rows})
    return {
        "render": {"dataset_seed": HELDOUT_SEED, "frames": FRAMES, "width": WIDTH, "height": HEIGHT,
                   "scenes": {s: scene_seed(HELDOUT_SEED, int(s.split("_")[-1])) for s in scenes}},
        "questions": rows,
        "predictions": {s.id: predictions[s.id] for s in samples},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="stage-2 final/ folder")
    parser.add_argument("--aggregator", required=True, help="folder with model.safetensors + vggt_config.json")
    parser.add_argument("--heldout", required=True, help="held-out QA JSONL (frames relative to its folder)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--windows", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out)
    package(Path(args.checkpoint), Path(args.aggregator), out)
    reference = regression_reference(out, Path(args.heldout), args.windows)
    (out / REGRESSION_FILE).write_text(json.dumps(reference, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {size / 2**20:.1f} MiB, {len(reference['questions'])} regression questions")
    if size > MAX_BYTES:
        print(f"warning: {size / 2**20:.1f} MiB is over the 30 MiB limit for a shipped model")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
