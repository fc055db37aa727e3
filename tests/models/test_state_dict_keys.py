"""Checkpoints written before a refactor still load: every registered model's state_dict keys and
shapes equal those recorded from the code at commit 00c447a (before issue 13 moved the layers).

``data/state_dict_keys.json`` maps model name → {key: shape} for ``create_model(name)`` with its
default configuration. A model registered later has no entry and is skipped; a changed name or
shape fails with the keys that differ. Regenerate the file only for a deliberate, documented
checkpoint break.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspikeformer.models import create_model, list_models

RECORDED: dict[str, dict[str, list[int]]] = json.loads(
    (Path(__file__).parent / "data" / "state_dict_keys.json").read_text()
)


def test_every_recorded_model_is_still_registered() -> None:
    assert sorted(set(RECORDED) - set(list_models())) == []


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_state_dict_keys_and_shapes_unchanged(name: str) -> None:
    state = create_model(name).state_dict()
    got = {k: list(v.shape) for k, v in state.items()}
    want = RECORDED[name]
    assert list(got) == list(want), (
        f"{name}: keys differ; missing {sorted(set(want) - set(got))[:10]}, "
        f"new {sorted(set(got) - set(want))[:10]}"
    )
    assert got == want
