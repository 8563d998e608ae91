"""The README's main job, `voice-device demo`, end to end with the real engines."""

import datetime as dt
import json

import device.app
from device.config import Config
from device.demo import RECORDING, run_demo
from device.offline import OfflineResponder
from device.replay import read_sidecar


def test_demo_is_interrupted_by_the_user_only_and_understands_every_line(tmp_path, monkeypatch):
    # The answer to "what time is it?" depends on the clock; pin it (this answer once made
    # an earlier setting interrupt itself).
    clock = dt.datetime(2026, 11, 25, 4, 47)
    monkeypatch.setattr(device.app, "OfflineResponder", lambda: OfflineResponder(now=lambda: clock))
    run_demo(Config(), tmp_path)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    timeline = "\n".join(f"{e['t']:.3f} {e['event']} {e.get('cause', '')} {e.get('text', '')} {e.get('p_user', '')}"
                         for e in events if e["event"] in ("state", "say", "transcript", "bargein_confirmed"))
    onsets = [u["onset_s"] for u in read_sidecar(RECORDING)["utterances"]]
    confirmed = [e["t"] for e in events if e["event"] == "bargein_confirmed"]
    # The user interrupts the story at 10 s. While the device computes, the simulated clock
    # follows the wall clock, so on a slow machine the answer to "what time is it?" can
    # still be playing when the user says the third line at 16 s, which is a second,
    # rightful barge-in. What never happens: the device interrupting itself, i.e. a
    # confirmation that is not within 1.5 s of a user's onset.
    assert any(10.0 < t < 11.5 for t in confirmed), timeline
    assert all(any(onset < t < onset + 1.5 for onset in onsets) for t in confirmed), timeline
    transcripts = [e["text"].lower() for e in events if e["event"] == "transcript"]
    assert len(transcripts) == 3, timeline
    assert "story" in transcripts[0] and "time" in transcripts[1] and "continue" in transcripts[2]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 3
