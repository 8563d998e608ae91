"""Shared fixtures: the recordings made by tests/recordings/generate.py."""

import json
from pathlib import Path

import pytest

RECORDINGS = Path(__file__).resolve().parent / "recordings"


@pytest.fixture(scope="session")
def recordings() -> Path:
    return RECORDINGS


def onset_of(name: str) -> float | None:
    """The true speech onset stored in a recording's sidecar."""
    return json.loads((RECORDINGS / name).with_suffix(".json").read_text())["onset_s"]
