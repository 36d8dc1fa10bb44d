"""`ssr data import conversations|referring` and `ssr data mix`: public training sets and the mixture.

    ssr data import conversations --annotations vsi590k.json --media VSI-590K/ --source vsi590k --out data/imports/vsi590k
    ssr data import referring --format scanrefer --annotations ScanRefer_filtered_train.json \\
        --scenes data/scenes --out data/imports/scanrefer
    ssr data mix --config training/configs/data/mixture_7b.yaml --out data/mixture_7b
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssr_core.commands.common import CliError, Subparsers, add_command, add_group


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _import_conversations(args: argparse.Namespace) -> int:
    from ssr_core.data.importers.conversations import import_conversations

    try:
        card = import_conversations(args.annotations, args.media, args.out, args.source, args.frames, args.split)
    except FileExistsError as err:
        raise CliError(str(err)) from None
    _report(card.summary(), card.skipped, Path(args.out))
    return 0


def _import_referring(args: argparse.Namespace) -> int:
    from ssr_core.data.importers.referring import import_referring

    try:
        card = import_referring(args.annotations, args.format, args.scenes, args.out, args.frames,
                                args.windows_per_scene, args.seed)
    except FileExistsError as err:
        raise CliError(str(err)) from None
    _report(card.summary(), card.skipped, Path(args.out))
    return 0


def _report(summary: str, skipped: list[dict], out: Path) -> None:
    for item in skipped[:20]:
        print(f"skipped {item['where']}: {item['reason']}")
    if len(skipped) > 20:
        print(f"... and {len(skipped) - 20} more skipped row(s), all in {out / 'data_card.json'}")
    print(summary)
    print(f"wrote {out / 'samples.jsonl'} and {out / 'data_card.json'}")


def _mix(args: argparse.Namespace) -> int:
    from ssr_core.data.mixture import build_mixture, load_mixture_config

    card = build_mixture(load_mixture_config(args.config), args.out)
    print(card.summary())
    print(f"wrote {Path(args.out)}/stage<N>/train.jsonl, val.jsonl and data_card.json")
    return 0


def register_import_commands(subparsers: Subparsers) -> None:
    """Add `import ...` and `mix` to the `ssr data` group."""
    group = add_group(subparsers, "import", "public training sets (released formats) -> training samples")
    p = add_command(group, "conversations", _import_conversations,
                    "conversation-style video / multi-image QA (VSI-590K, SPAR-7M, ViCA, VLM-3R)")
    p.add_argument("--annotations", required=True, help="the set's JSON list or JSONL of conversation rows")
    p.add_argument("--media", required=True, help="folder the rows' video / image paths are relative to")
    p.add_argument("--source", required=True, help="source name (sample ids and the mixture use it)")
    p.add_argument("--out", required=True, help="output folder: samples.jsonl, data_card.json, media/ link")
    p.add_argument("--frames", type=_positive, default=32, help="most images kept per sample (window size)")
    p.add_argument("--split", default="train")
    p = add_command(group, "referring", _import_referring,
                    "ScanRefer / Multi3DRefer / ReferIt3D referrals over converted ScanNet scenes -> 7-DoF grounding")
    p.add_argument("--format", required=True, choices=("scanrefer", "multi3drefer", "nr3d", "sr3d"))
    p.add_argument("--annotations", required=True, help="the set's JSON (ScanRefer, Multi3DRefer) or CSV (Nr3D, Sr3D)")
    p.add_argument("--scenes", required=True, help="scenes converted by `ssr data convert scannet`")
    p.add_argument("--out", required=True, help="output folder: samples.jsonl, windows/, data_card.json, scenes/ link")
    p.add_argument("--frames", type=_positive, default=32, help="frames per window")
    p.add_argument("--windows-per-scene", type=_positive, default=4)
    p.add_argument("--seed", type=int, default=0)
    p = add_command(subparsers, "mix", _mix, "mix imported and built sample files per stage, keeping evaluation scenes out")
    p.add_argument("--config", required=True, help="mixture config (YAML or JSON), e.g. training/configs/data/mixture_7b.yaml")
    p.add_argument("--out", required=True, help="output folder: stage<N>/train.jsonl, val.jsonl, data_card.json")
