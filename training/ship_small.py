"""Package a trained small SSR-3D as a relocatable folder with its aggregator and a regression reference.

    python -m training.ship_small --checkpoint RUN/stage2/final --aggregator RUN/geometry/aggregator \\
        --heldout RUN/samples_heldout/eval.jsonl --results RUN/results --out models/ssr3d_small

The folder gets the SSR checkpoint, `aggregator/` (weights + `vggt_config.json`) with
`ssr_config.json`'s `vggt_path` set to `aggregator/model.safetensors` (relative paths are resolved
against the checkpoint folder), and `regression.json`: the questions of a few held-out windows,
how to re-render their frames (scene seed, frame count and size), and the model's answers on
CPU in float32, which `tests/test_shipped_small_model.py` reproduces; and `README.md`, the model
card, with the held-out comparison of `training.report_small table` (`--results`). A model whose
held-out VSI score is not above the blind baseline's (lower end of the 95 % interval of SSR-3D −
blind at or below 0) is refused: it must not become the demo's default.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_file

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


class NotBetterThanBlind(Exception):
    """The held-out comparison does not show SSR-3D above the blind baseline."""


def check_beats_blind(results: dict) -> dict:
    """SSR-3D − blind on VSI overall from report_small's results.json; refuses unless its CI is above 0."""
    difference = results.get("differences", {}).get("SSR-3D − blind", {}).get("vsi_overall")
    if difference is None:
        raise NotBetterThanBlind("results.json has no 'SSR-3D − blind' comparison (report_small table --compare SSR-3D:blind)")
    if difference["ci95"][0] <= 0:
        raise NotBetterThanBlind(
            f"SSR-3D − blind on VSI overall is {100 * difference['difference']:+.1f} points, 95 % CI "
            f"[{100 * difference['ci95'][0]:.1f}, {100 * difference['ci95'][1]:.1f}]: not above blind, not shipped"
        )
    return difference


def standing(results: dict) -> list[str]:
    """Where SSR-3D stands against the frequency baseline on every target of issue 10 (results.json)."""
    ssr, frequency = results["results"]["SSR-3D"], results["results"]["frequency"]
    below = [t for t, v in ssr["vsi_per_task"].items() if v < frequency["vsi_per_task"].get(t, float("-inf"))]
    return [
        f"VSI overall {100 * ssr['vsi_overall']:.1f} (frequency baseline {100 * frequency['vsi_overall']:.1f}); "
        + (f"below the frequency baseline on {', '.join(below)}." if below else "at or above it on every task."),
        f"Detect-all grounding: Acc@0.25 {100 * ssr['detect_all_acc_025']:.1f} %, "
        f"{100 * ssr['detect_all_matched_fraction']:.1f} % of objects matched.",
        f"Cognitive maps: median cell error {ssr['cogmap_median_cell_error']:.2f} "
        f"(frequency baseline {frequency['cogmap_median_cell_error']:.2f}).",
    ]


def model_card(model_dir: Path, results_dir: Path, difference: dict, caveats: str = "") -> str:
    """README.md of the shipped folder: what the model is, what it saw, how it scores, what it is not.
    `caveats`: the run's reading of its own numbers (markdown), under the computed standing."""
    config = json.loads((model_dir / "ssr_config.json").read_text())
    height, width = config["image_size"]
    parameters = sum(
        len(tensor.flatten()) for name in ("model.safetensors", "ssr_3d_branch.safetensors", f"{AGGREGATOR_DIR}/{VGGT_WEIGHTS_FILE}")
        for tensor in load_file(model_dir / name).values()
    )
    table = (results_dir / "results.md").read_text().strip()
    limits = "\n".join(f"- {line}" for line in standing(json.loads((results_dir / "results.json").read_text())))
    return f"""# ssr3d_small: the small SSR-3D trained by this project

SSR-3D (Qwen2.5-VL layout: ViT 4 x 128, LLM 4 x 256, byte-level BPE of {json.loads((model_dir / "config.json").read_text())["text_config"]["vocab_size"]} tokens;
3D branch MLP_trans + MLP_3D; a 4-layer, 128-wide VGGT aggregator read at layer {config["spatial_layer"]}, frozen),
{parameters / 1e6:.1f} M parameters in float32, trained from random weights on one CPU core by
`scripts/train_small.sh` (docs/RESULTS_SMALL.md has the commands, the curves and the probes).

- Input: windows of {config["num_frames"]} frames of {width}x{height} px (`ssr_config.json`), the project's prompts of
  prompt format version {config.get("prompt_format_version")} (`ssr_core.language.prompts`); answers are parsed by the
  same version's parsers.
- Training data: only synthetic rooms of the data engine (`ssr data synth`, dataset seed 0, 200 scenes).
  The held-out scores below are on 30 other rooms (dataset seed 1000) it never saw.
- Held-out VSI overall, SSR-3D − blind: {100 * difference["difference"]:+.1f} points (95 % CI
  [{100 * difference["ci95"][0]:.1f}, {100 * difference["ci95"][1]:.1f}]).
- Not for real robots: it has never seen a real image; the paper's models are 7B, trained on
  real scans.
- `regression.json`: answers it gave when packaged; `tests/test_shipped_small_model.py` re-renders
  those windows and checks every answer is unchanged.

## Held-out comparison (`training.report_small table`)

{table}

## Caveats

{limits}
{caveats.strip()}
"""


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
    parser.add_argument("--results", required=True, help="report_small table's folder (results.json, results.md)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--caveats", type=Path, help="markdown appended to the card's Caveats (the run's reading)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        difference = check_beats_blind(json.loads((Path(args.results) / "results.json").read_text()))
    except NotBetterThanBlind as err:
        print(f"ship_small: {err}")
        return 1
    package(Path(args.checkpoint), Path(args.aggregator), out)
    caveats = args.caveats.read_text() if args.caveats else ""
    (out / "README.md").write_text(model_card(out, Path(args.results), difference, caveats))
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
