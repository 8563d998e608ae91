"""The README's main job, `voice-device demo`, end to end with the real engines."""

import datetime as dt
import json

import device.app
from device.config import Config
from device.demo import run_demo
from device.offline import OfflineResponder


def test_demo_is_interrupted_once_and_understands_every_line(tmp_path, monkeypatch):
    # The answer to "what time is it?" depends on the clock; pin it (this answer once made
    # an earlier setting interrupt itself).
    clock = dt.datetime(2026, 11, 25, 4, 47)
    monkeypatch.setattr(device.app, "OfflineResponder", lambda: OfflineResponder(now=lambda: clock))
    run_demo(Config(), tmp_path)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    # The user interrupts the story once, at 10 s; the device never interrupts itself.
    confirmed = [e["t"] for e in events if e["event"] == "bargein_confirmed"]
    assert len(confirmed) == 1 and 10.0 < confirmed[0] < 10.5
    transcripts = [e["text"].lower() for e in events if e["event"] == "transcript"]
    assert len(transcripts) == 3
    assert "story" in transcripts[0] and "time" in transcripts[1] and "continue" in transcripts[2]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 3
