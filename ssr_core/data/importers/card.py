"""What an import produced and what it skipped: the data card every importer writes."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssr_core.io import atomic_write_text

SAMPLES_FILE = "samples.jsonl"
CARD_FILE = "data_card.json"


@dataclass
class ImportCard:
    """Per-task and per-question-type sample counts, and every skipped row with its reason."""

    source: str
    inputs: list[str]
    samples: Counter[str] = field(default_factory=Counter)  # per task
    question_types: Counter[str] = field(default_factory=Counter)  # "task/question_type"
    rows_read: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"where", "reason"}
    scenes: set[str] = field(default_factory=set)  # scenes / videos the samples come from

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append({"where": where, "reason": reason})

    def add(self, sample: dict[str, Any]) -> None:
        self.samples[sample["task"]] += 1
        self.question_types[f"{sample['task']}/{sample.get('question_type')}"] += 1

    def to_json(self) -> dict[str, Any]:
        reasons = Counter(s["reason"].split(":")[0] for s in self.skipped)
        return {
            "source": self.source,
            "inputs": self.inputs,
            "rows_read": self.rows_read,
            "samples": dict(self.samples),
            "num_samples": sum(self.samples.values()),
            "question_types": dict(sorted(self.question_types.items())),
            "num_skipped": len(self.skipped),
            "skipped_by_reason": dict(reasons),
            "skipped": self.skipped,
            "scenes": sorted(self.scenes),
        }

    def write(self, out_dir: Path) -> None:
        atomic_write_text(out_dir / CARD_FILE, json.dumps(self.to_json(), indent=1) + "\n")

    def summary(self) -> str:
        return (
            f"{self.source}: {sum(self.samples.values())} sample(s) from {self.rows_read} row(s) "
            f"({', '.join(f'{t}: {n}' for t, n in sorted(self.samples.items())) or 'none'}); "
            f"{len(self.skipped)} row(s) skipped"
        )


def link_media(out_dir: Path, name: str, target: Path) -> str:
    """Make `out_dir/name` point at `target` so sample frame paths stay relative to `out_dir`."""
    link = out_dir / name
    if link.is_symlink() or link.exists():
        if link.resolve() != target.resolve():
            raise FileExistsError(f"{link} already exists and points elsewhere than {target}")
    else:
        link.symlink_to(target.resolve(), target_is_directory=True)
    return name
