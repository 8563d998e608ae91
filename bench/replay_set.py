"""The benchmark's replay set: device answers, user interruptions, echo levels, rooms.

Made once with Piper (the device) and espeak-ng (users) and cached under
bench/.cache/<digest of the answers>/ (users under <n>-per-answer/; not in git); `make_set()`,
`make_backchannels()` and `make_backchannel_then_command()` return the scenarios.
Echo levels are given as the echo's level at the mic relative to the user's speech, the
figure that makes barge-in hard. The echo stays at a realistic level (the device's -20
dBFS through an echo path of 0 dB) and the user gets quieter: a louder echo would clip
the mic, which no device is set up to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.audio.wav import read_wav, write_wav
from device.scenarios import (BACKCHANNELS, DEVICE_LEVEL_DBFS, INTERRUPTIONS, RATE_HZ, USER_LEVEL_DBFS, USER_VOICES,
                              at_level, device_says, far_field_response, interruption, no_user)

# The device's answers. None of their sentences is in the classifier's training data
# (models/bargein/generate.py DEVICE_LINES): false confirmations are counted on speech the
# model has not learnt by heart, as on a device that says new things every day.
ANSWERS = (
    "Here is a story. A long time ago, a young shepherd lived at the edge of a great forest. Every evening "
    "he counted his sheep twice, because he was afraid that the wolves would come down from the hills.",
    "This week looks changeable. Monday and Tuesday stay dry and mild, but on Wednesday a band of rain "
    "moves in from the coast, and the weekend will be cooler, with a few bright spells on Sunday.",
    "For a quick vegetable soup, chop an onion, two carrots and a potato. Soften the onion in butter, add "
    "the rest with a litre of stock, and let it cook for about twenty minutes before you blend it.",
    "The museum has three floors. The ground floor shows old maps of the city, the first floor is about "
    "the river and its bridges, and the top floor has a cafe with a view over the harbour.",
)
# One folder per set of answers: the recordings (and the users' onsets) follow from them.
ANSWERS_DIGEST = hashlib.sha256("\n".join(ANSWERS).encode()).hexdigest()[:12]
CACHE = Path(__file__).resolve().parent / ".cache" / ANSWERS_DIGEST
ECHO_OVER_USER_DB = (-10.0, 0.0, 10.0, 20.0)
NOISE_IN_RECORDINGS_DBFS = -55.0  # the room noise in every user recording (scaled with the user)


def user_gain_for(echo_over_user_db: float) -> float:
    """Gain for the user recordings (made at USER_LEVEL_DBFS) that puts the echo
    `echo_over_user_db` above the user, with the echo path at 0 dB."""
    return (DEVICE_LEVEL_DBFS - echo_over_user_db) - USER_LEVEL_DBFS


@dataclass(frozen=True)
class Scenario:
    """One replay: the user's recording and the answer the device is speaking."""

    name: str
    user_wav: Path
    answer_wav: Path
    onset_s: float | None
    answer_s: float
    silent_spans: tuple[tuple[float, float], ...] = ()
    """Stretches of the answer where the device plays silence (between a session's answers)."""
    backchannel: bool = False
    """The user only backchannels ("mm-hmm"): the device should duck and carry on."""
    after_backchannel: bool = False
    """The user backchannels, then talks to the device (onset_s: of the command)."""
    voice: str = ""
    """The user's espeak-ng voice."""
    knocks: str = ""
    """Nobody talks, but there are knocks: "dry", or through a room, "near" or "far"."""
    user_room: str = ""
    """The user's voice reaches the mic dry (""), or through a room, "near" or "far"."""

    def speech_s(self, until_s: float) -> float:
        """Seconds of device speech from the start until `until_s`."""
        return until_s - sum(max(0.0, min(b, until_s) - a) for a, b in self.silent_spans)


def answer_files() -> list[tuple[Path, float]]:
    """(WAV, seconds) of the device's answers, made with Piper on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for i, text in enumerate(ANSWERS):
        path = CACHE / f"answer{i}.wav"
        if not path.exists():
            audio, rate = device_says(text)
            write_wav(path, at_level(audio, DEVICE_LEVEL_DBFS), rate)
        meta = CACHE / f"answer{i}.json"
        if not meta.exists():
            meta.write_text(json.dumps({"seconds": read_wav(path).duration_s}))
        out.append((path, json.loads(meta.read_text())["seconds"]))
    return out


SESSION_GAP_S = 1.0  # between answers in a session: the device listens, then speaks again


def session(order: list[int]) -> Scenario:
    """The device talking for a while with nobody talking to it: the answers in `order`,
    with a second of silence after each, over one recording of room noise. One replay of it is
    one echo canceller kept across answers, as in a device that stays up."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = "session" + "".join(str(i) for i in order)
    answer_wav = CACHE / f"{name}.wav"
    user_wav = CACHE / f"{name}-nouser.wav"
    if not answer_wav.exists():
        answers = answer_files()
        parts = []
        for i in order:
            audio = read_wav(answers[i][0])
            parts += [audio.mono(), np.zeros(round(SESSION_GAP_S * audio.sample_rate_hz), np.float32)]
        write_wav(answer_wav, np.concatenate(parts), audio.sample_rate_hz)
    gaps, seconds = [], 0.0
    for i in order:
        seconds += answer_files()[i][1]
        gaps.append((seconds, seconds + SESSION_GAP_S))
        seconds += SESSION_GAP_S
    if not user_wav.exists():
        no_user(seconds, noise_dbfs=NOISE_IN_RECORDINGS_DBFS, seed=200 + int(name[len('session'):])).save(user_wav)
    return Scenario(name, user_wav, answer_wav, None, seconds, tuple(gaps))


KNOCK_PEAK_DBFS = (-20.0, -10.0)
"""Peaks of the knock bursts at the mic (the device's echo is at -20 dBFS rms)."""
KNOCK_ROOM_RT60_S = 0.4
KNOCK_DIRECT_DB = {"near": 0.0, "far": -9.0}
"""Where the knocks are: the direct sound as loud as the room's reverberation (a knock on
the table the device stands on, a metre or two away) or 9 dB under it (a door across the room)."""


def knock_session(order: list[int], where: str) -> Scenario:
    """session(order) with knocks instead of silence from the room: a burst of 3-11 knocks,
    taps or clatter (models/bargein/generate.py's knocks()) every 3-6 s, `where` "dry" or
    through far_field_response(), "near" or "far" (KNOCK_DIRECT_DB). All draw the same bursts at
    the same times and levels. The classifier trained on dry knocks only (EXPERIMENTS.md,
    "Knocks in a room")."""
    from generate import knocks  # models/bargein/ on the path, as bench/bargein.py puts it

    base = session(order)
    name = f"{base.name}-knocks-{where}"
    user_wav = CACHE / f"{name}.wav"
    if not user_wav.exists():
        rng = np.random.default_rng(400 + int("".join(str(i) for i in order)))
        response = None if where == "dry" else far_field_response(KNOCK_ROOM_RT60_S, KNOCK_DIRECT_DB[where], seed=401)
        audio = read_wav(base.user_wav).mono().copy()
        at_s = float(rng.uniform(1.0, 4.0))
        while at_s < base.answer_s - 1.0:
            burst = knocks(1.0, rng, response) * np.float32(10 ** (rng.uniform(*KNOCK_PEAK_DBFS) / 20))
            start = round(at_s * RATE_HZ)
            audio[start : start + len(burst)] += burst[: len(audio) - start]
            at_s += float(rng.uniform(3.0, 6.0))
        write_wav(user_wav, audio, RATE_HZ)
    return Scenario(name, user_wav, base.answer_wav, None, base.answer_s, base.silent_spans, knocks=where)


def _users(per_answer: int, kind: str, texts: tuple[str, ...], times_seed: int, first_seed: int,
           befores: tuple[str, ...] = (), room: str = "") -> list[Scenario]:
    """`per_answer` users over each answer, each with another voice and text, at a random time
    (drawn from `times_seed`; `first_seed` and up seed their room noise). Each `per_answer` has
    its own folder: the users' voices, texts and times follow from it. With `befores` each
    user first says one of them, then the text 0.2-1 s later (drawn from their seed). With
    `room` ("near" or "far", KNOCK_DIRECT_DB) their voices come through far_field_response()."""
    folder = CACHE / f"{per_answer}-per-answer"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(times_seed)
    stem = {"interruption": "user", "backchannel_then_command": "then"}.get(kind, kind) + (f"-{room}" if room else "")
    out = []
    for a, (answer_wav, seconds) in enumerate(answer_files()):
        for k in range(per_answer):
            index = a * per_answer + k
            path = folder / f"{stem}{index}.wav"
            at_s = float(rng.uniform(1.5, seconds - 3.0))
            if not path.exists():
                voice = USER_VOICES[index % len(USER_VOICES)]
                text = texts[(index // len(USER_VOICES) + index) % len(texts)]
                before = befores[index % len(befores)] if befores else None
                gap_s = float(np.random.default_rng(first_seed + index).uniform(0.2, 1.0)) if befores else 0.0
                response = (far_field_response(USER_ROOM_RT60_S, KNOCK_DIRECT_DB[room], seed=first_seed + index)
                            if room else None)
                interruption(text, voice, at_s=at_s, total_s=seconds, seed=first_seed + index, kind=kind,
                             before=before, gap_s=gap_s, response=response).save(path)
            sidecar = json.loads(path.with_suffix(".json").read_text())
            out.append(Scenario(f"a{a}-{stem[0]}{room[:1]}{index}", path, answer_wav, sidecar["onset_s"], seconds,
                                backchannel=kind == "backchannel", after_backchannel=bool(befores),
                                voice=sidecar["voice"], user_room=room))
    return out


USER_ROOM_RT60_S = KNOCK_ROOM_RT60_S
"""The room of make_users_in_a_room(): the knocks' (a living room)."""


def make_users_in_a_room(per_answer: int = 6) -> list[Scenario]:
    """make_set()'s interruptions (the same voices, texts and times) with each voice heard
    through a room, near and far (KNOCK_DIRECT_DB: the direct sound as loud as the
    reverberation, a metre or two away; or 9 dB under it, across the room): the other users
    reach the mic dry, as if they stood by the device."""
    return [scenario for room in KNOCK_DIRECT_DB for scenario in _interrupting(per_answer, room)]


def _interrupting(per_answer: int, room: str = "") -> list[Scenario]:
    """The users who interrupt the device in make_set(); make_users_in_a_room() has the same
    ones heard through a room."""
    return _users(per_answer, "interruption", INTERRUPTIONS, times_seed=7, first_seed=0, room=room)


def make_set(per_answer: int = 6) -> tuple[list[Scenario], list[Scenario]]:
    """(interruptions, echo-only) scenarios; each interruption has a different voice and text."""
    interrupts = _interrupting(per_answer)
    echo_only = []
    for a, (answer_wav, seconds) in enumerate(answer_files()):
        path = CACHE / f"nouser{a}.wav"
        if not path.exists():
            no_user(seconds, noise_dbfs=NOISE_IN_RECORDINGS_DBFS, seed=100 + a).save(path)
        echo_only.append(Scenario(f"a{a}-none", path, answer_wav, None, seconds))
    return interrupts, echo_only


def make_backchannels(per_answer: int = 6) -> list[Scenario]:
    """Users who only backchannel ("mm-hmm") over each answer: by default the device ducks
    and carries on, it does not stop."""
    return _users(per_answer, "backchannel", BACKCHANNELS, times_seed=8, first_seed=300)


def make_backchannel_then_command(per_answer: int = 6) -> list[Scenario]:
    """Users who backchannel and then, 0.2-1 s after it, talk to the device ("Mm-hmm." ...
    "Wait a second."): the device should carry on through the first and stop for the second."""
    return _users(per_answer, "backchannel_then_command", INTERRUPTIONS, times_seed=9, first_seed=600,
                  befores=BACKCHANNELS)
