"""Samples per second written by the importers and the mixture builder on CPU.

Synthetic inputs in the released formats: `--rows` conversation rows (VSI-590K style, one video
each, two turns) over placeholder media files; `--referrals` ScanRefer rows over the ScanNet test
fixture (converted once, not timed); and a two-source mixture of the conversation samples.
Run: `OMP_NUM_THREADS=1 python bench/importers_bench.py [--rows 20000 --referrals 2000]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from ssr_core.data.converters.scannet import convert_scannet
from ssr_core.data.importers.conversations import import_conversations
from ssr_core.data.importers.referring import import_referring
from ssr_core.data.mixture import build_mixture, load_mixture_config

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "scannet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--referrals", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        media = root / "media"
        (media / "videos").mkdir(parents=True)
        rows = []
        for i in range(args.rows):
            video = f"videos/scene{i % 500:04d}_00.mp4"
            (media / video).touch()
            rows.append({"id": i, "video": video, "question_type": "object_counting", "conversations": [
                {"from": "human", "value": "<video>\nThese are frames of a video.\nHow many chairs are in this room?"},
                {"from": "gpt", "value": str(i % 7)},
                {"from": "human", "value": "And how many tables?"}, {"from": "gpt", "value": "1"}]})
        (root / "vsi590k.json").write_text(json.dumps(rows))
        start = time.perf_counter()
        card = import_conversations(root / "vsi590k.json", media, root / "conv", "vsi590k")
        seconds = time.perf_counter() - start
        written = sum(card.samples.values())
        print(f"conversations: {written} samples from {args.rows} rows in {seconds:.2f} s -> {written / seconds:,.0f} samples/s")

        convert_scannet(FIXTURE, "scene0000_00", root / "scenes", frame_step=1)
        referrals = [{"scene_id": "scene0000_00", "object_id": str((0, 1, 4)[i % 3]), "ann_id": str(i),
                      "description": f"the object number {i} in the room."} for i in range(args.referrals)]
        (root / "scanrefer.json").write_text(json.dumps(referrals))
        start = time.perf_counter()
        card = import_referring(root / "scanrefer.json", "scanrefer", root / "scenes", root / "ref",
                                frames_per_window=2, windows_per_scene=3)
        seconds = time.perf_counter() - start
        written = sum(card.samples.values())
        print(f"scanrefer: {written} samples from {args.referrals} rows in {seconds:.2f} s -> {written / seconds:,.0f} samples/s")

        config = {"name": "bench", "val_fraction": 0.05, "evaluation": {"scenes": ["scene0001_00"]}, "sources": [
            {"name": "vsi590k", "stage": 2, "samples": str(root / "conv" / "samples.jsonl"), "weight": 0.5},
            {"name": "scanrefer", "stage": 1, "samples": str(root / "ref" / "samples.jsonl"), "weight": 2.0}]}
        (root / "mix.yaml").write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        mix = build_mixture(load_mixture_config(root / "mix.yaml"), root / "mix")
        seconds = time.perf_counter() - start
        read = sum(c.read for c in mix.sources.values())
        print(f"mixture: {read} samples read (guard + weights + two passes) in {seconds:.2f} s -> {read / seconds:,.0f} samples/s")


if __name__ == "__main__":
    main()
