"""Every text a model is trained on comes from the versioned prompt module, and wording is versioned."""

from __future__ import annotations

import numpy as np
import pytest

from ssr_core.data.questions import generate_qa
from ssr_core.language import prompts
from ssr_core.language.prompts import (
    PROMPT_FORMAT_VERSION,
    QUESTION_TEMPLATES,
    UnknownQuestionFamily,
    match_question,
    prompt_fingerprint,
    question_text,
    vsibench_prompt,
    vsibench_question,
)
from tests.test_qa import random_window

# The fingerprint of every released prompt-format version. A change to any text of the contract
# changes the fingerprint: bump PROMPT_FORMAT_VERSION and record the new one here (checkpoints
# trained on the old texts then warn on load).
RECORDED_FINGERPRINTS = {
    "1": "b24cb55cccd75d8ca37691e1517c1f7b8a934bd785eb122c4bf0b1ad8ad73a28",
    "2": "904ef7edeb11d7cd55df8882a42408528c7fbb0a74cb74735c29fed6b1ba420b",  # + grounding_description, grounding_description_all
}

# Families whose questions come from imported public sets, not from `generate_qa`
# (their samples are checked in test_importers.py).
IMPORTED_FAMILIES = {"grounding_description", "grounding_description_all"}

# Sample question_type -> template families its question may come from.
FAMILIES = {
    None: {"cogmap"},
    "detect_all": {"detect_all"},
    "grounding_unique": {"grounding_unique"},
    "grounding_proximity": {"grounding_proximity_nearest", "grounding_proximity_farthest"},
    "grounding_direction": {"grounding_direction"},
    "grounding_temporal": {"grounding_temporal"},
    "grounding_all_of_label": {"grounding_all_of_label"},
}


def _question(messages: list[dict[str, str]], task: str) -> str:
    text = messages[-1]["content"]
    return vsibench_question(text) if task == "vsibench" else text


def test_wording_changes_need_a_version_bump() -> None:
    assert PROMPT_FORMAT_VERSION in RECORDED_FINGERPRINTS, "record the fingerprint of the new version"
    assert prompt_fingerprint() == RECORDED_FINGERPRINTS[PROMPT_FORMAT_VERSION], (
        "a prompt text changed: bump PROMPT_FORMAT_VERSION and record its fingerprint"
    )


def test_fingerprint_sees_a_one_character_change(monkeypatch: pytest.MonkeyPatch) -> None:
    before = prompt_fingerprint()
    changed = dict(QUESTION_TEMPLATES, object_counting="How many {label}s are in this room?")
    monkeypatch.setattr(prompts, "QUESTION_TEMPLATES", changed)
    assert prompt_fingerprint() != before


def test_every_generated_question_is_a_registered_template() -> None:
    seen: set[str] = set()
    for seed in range(30):
        for item in generate_qa(random_window(seed), np.random.default_rng(seed)):
            question = _question(item.messages, item.task)
            expected = FAMILIES.get(item.question_type, {item.question_type})
            match = match_question(question)
            assert match is not None, f"unregistered question text: {question!r}"
            assert match.family in expected, (item.question_type, match.family, question)
            assert question_text(match.family, **match.fields) == question  # rendered from the template
            seen.add(match.family)
    generated = set(QUESTION_TEMPLATES) - IMPORTED_FAMILIES
    assert seen == generated, f"families never generated: {generated - seen}"


def test_unknown_family_is_a_clear_error() -> None:
    with pytest.raises(UnknownQuestionFamily):
        question_text("object_weight", label="chair")


def test_vsibench_question_inverts_the_prompt() -> None:
    q = question_text("object_counting", label="chair")
    assert vsibench_question(vsibench_prompt(q)) == q
    assert vsibench_question(vsibench_prompt(q, ["A. 1", "B. 2"])) == q


def test_more_specific_templates_win() -> None:
    text = question_text("grounding_proximity_nearest", label="chair", landmark="table")
    match = match_question(text)
    assert match is not None and match.family == "grounding_proximity_nearest"
    assert match.fields == {"label": "chair", "landmark": "table"}
