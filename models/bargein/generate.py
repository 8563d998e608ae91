"""Labelled scenarios for the barge-in classifier, drawn from seeds, with synthetic voices.

    .venv/bin/python models/bargein/generate.py --split train --count 2400 [--jobs 2]

A scenario is 10 s at the device's mic, every frame labelled: the device (Piper joe) speaks
through a simulated small loudspeaker (band limits, soft clipping) into a pyroomacoustics
room, and the mic hears that echo at 10 dB below to 20 dB above the user, plus one of: a
user interrupting (espeak-ng / Flite / Festival voices with pitch and tempo variants, in
their own spot in the room), a user backchanneling ("mm-hmm", "yeah"), a distant TV,
music-like sound, knocks and clatter, or nobody; fan noise always. Every scenario then runs
through the device's own front end (delay estimation, Speex AEC, Silero VAD) and feature
extractor, so the model learns from exactly what it will see. Half the scenarios start with
the front end fresh, as after start-up (the canceller has not converged); the other half
are preceded by 2-8 s of the device talking (unlabelled, not stored), as on a device that
has been answering for a while. Labels per 32 ms frame: 0 nobody talking to the device, 1 a
person talking to it, 2 a backchannel. Extra shards of one kind come from --kind, among
them `sound_then_person` (a backchannel or a burst of knocks, then a person), which the
mixed splits never draw.

Held out for testing: voices (`TEST_VOICES`), rooms (`split="test"` draws its rooms
from a different range of sizes and absorption) and the device's own lines
(`TEST_DEVICE_LINES`), never seen in training.
Writes DIR/<split>.npz (or <split>-<start>.npz for a shard starting at --start):
features, labels, vad_raw (zeros in the train split), ref_active, per-scenario offsets,
onsets, device speech in the lead-in, and metadata.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from device.audio.echo_path import bandpass_fir  # noqa: E402
from device.audio.wav import parse_wav, resample  # noqa: E402
from device.config import Config  # noqa: E402
from device.listen.echo_gate import EchoGate  # noqa: E402
from device.listen.features import FEATURES, FeatureExtractor  # noqa: E402
from device.listen.stack import ListeningStack  # noqa: E402
from device.listen.vad import FRAME_SAMPLES, SileroVad  # noqa: E402
from device.models import verified_path  # noqa: E402
from device.scenarios import active_rms, pink_noise  # noqa: E402

RATE = 16000
FRAME_S = FRAME_SAMPLES / RATE
LABELLED_S = 10.0
NONE, PERSON, BACKCHANNEL = 0, 1, 2
SOUND_THEN_PERSON = "sound_then_person"
"""A scenario kind drawn only for extra shards (--kind): a backchannel or a burst of knocks,
then, 0.1-2 s after it, a person talking to the device. The device hears both in one
answer, and the classifier must not be slow to believe in the person for having just heard
the sound (the mixed kinds hold one event each)."""
ROOM_KNOCKS = "room_knocks"
"""A scenario kind drawn only for extra shards (--kind): the knocks of "knocks", but heard
through the room from where a person would be (a cup put down, a knock on the table),
reverberating as a voice does. The "knocks" of the mixed kinds, which the shipped model
trained on, reach the mic dry (EXPERIMENTS.md, "Knocks in a room")."""

# engine, voice, and how to vary it. Test voices never appear in training.
TRAIN_VOICES = [("espeak", v) for v in (
    "en-us+f1", "en-us+f3", "en-us+f5", "en-us+m1", "en-us+m3", "en-us+m5", "en-us+m7", "en-gb+f2", "en-gb+f4",
    "en-gb+m2", "en-gb+m4", "en-gb+m6", "en-gb-x-rp+f3", "en-gb-x-rp+m1", "en-us-nyc+f2", "en-us-nyc+m3",
    "en-gb-x-gbclan+m2", "en-gb-x-gbcwmd+f5", "en-us+klatt", "en-us+david", "en-gb+linda", "en-us+john",
    "en-gb+steph", "en-us+michael")] + [("flite", v) for v in ("slt", "awb", "kal16")] + [("festival", "kal_diphone")]
TEST_VOICES = [("espeak", v) for v in ("en-gb-scotland+f2", "en-gb-scotland+m3", "en-029+f4", "en-029+m2",
                                       "en-us+annie", "en-gb+Andy")] + [("flite", "rms"), ("festival", "cmu_us_slt_arctic_hts")]

INTERRUPTIONS = [
    "Stop.", "Wait.", "Hold on.", "Stop, stop.", "Wait a second.", "No, stop.", "Pause.", "Cancel that.",
    "Okay, that's enough.", "Hey, stop talking.", "Sorry, can I ask something?", "What time is it?",
    "Actually, what's the weather tomorrow?", "No no, I meant the other one.", "Can you repeat that?",
    "Turn the volume down.", "Play some music instead.", "Set a timer for ten minutes.",
    "Who wrote that book?", "How long does it take to get there?", "Never mind, tell me a joke.",
    "Wait, what did you just say?", "Skip this one.", "That's not what I asked.", "Louder please.",
]
BACKCHANNELS = ["Mm-hmm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "I see.", "Mhm.", "Sure.", "Got it.", "Yep."]
TV_LINES = [
    "In tonight's news, the city council voted to extend the bus service into the evening.",
    "And now, the weather for the weekend, with sunshine in the north and showers in the south.",
    "Stay with us after the break for the latest scores from around the league.",
    "Scientists say the new telescope has already found three distant galaxies.",
    "Traffic is heavy on the main road this morning because of roadworks near the bridge.",
]
DEVICE_LINES = [
    "Here is a short story about a fox who wanted to reach some grapes.",
    "Tomorrow will be mostly sunny with a high of twenty two degrees.",
    "To make a simple tomato sauce, warm some olive oil in a pan and add chopped garlic.",
    "The train to the city leaves every fifteen minutes during the day.",
    "Your timer for the pasta is set for eleven minutes.",
    "The capital of Australia is Canberra, not Sydney as many people think.",
    "A hare was always boasting about how fast he could run.",
    "The museum is open from nine in the morning until five in the evening.",
    "I have added milk, eggs and bread to your shopping list.",
    "The next song is a quiet piano piece from the nineteen twenties.",
    "Octopuses have three hearts and blue blood.",
    "Your meeting with the dentist is on Thursday at half past two.",
    "It is about forty minutes by bicycle if you take the river path.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman.",
    "The library will be closed on Monday for the public holiday.",
    "Light from the sun takes a little over eight minutes to reach the earth.",
    "Remember to water the tomatoes, the weather has been dry all week.",
    "The football match starts at eight, and tickets are still available.",
    "Here are three ideas for dinner tonight: soup, a salad, or pasta.",
    "The longest river in the world is the Nile, in Africa.",
    "I can't find a contact called Robert, would you like me to add one?",
    "The lights in the kitchen are now off.",
    "Mount Everest is almost nine thousand metres high.",
    "Your package should arrive tomorrow between ten and twelve.",
    "Bees visit thousands of flowers to make a single spoon of honey.",
    "The bakery on the corner opens at seven every morning.",
    "In nineteen sixty nine, people walked on the moon for the first time.",
]
# The device's lines in the test split, never trained on: a device says new things every day,
# and false alarms should be counted on speech the model has not learnt by heart.
TEST_DEVICE_LINES = [
    "The pharmacy on High Street closes at six today, but the one by the station is open until ten.",
    "Sure, I have set an alarm for half past six tomorrow morning.",
    "Penguins cannot fly, but they are excellent swimmers and can dive more than five hundred metres.",
    "Your flight to Lisbon is on time and boards at gate twelve.",
    "A good way to remember it is that the first letter of each word spells the answer.",
    "It is eleven degrees outside, with the clouds clearing later this afternoon.",
    "For pancakes, mix flour, milk and two eggs, then let the batter rest for ten minutes.",
    "The Great Wall of China is not visible from space with the naked eye.",
    "I have turned the heating up to twenty one degrees in the living room.",
    "There are three trains this evening, at seven, at eight fifteen and at nine forty.",
    "Chapter two begins on a cold winter night, when the lighthouse keeper hears a knock at the door.",
    "Your sister's birthday is next Saturday; would you like a reminder on Friday?",
    "Honey never spoils: archaeologists have found edible honey in ancient Egyptian tombs.",
    "Okay, here is the news from this morning.",
]


DEVICE_VOICE_SEED = 20261204
"""Seeds Piper's noise, so the device's lines, and with them every split, come out the same on
every run. Piper's random ops take their seeds from onnxruntime's global seed when the voice
loads, together with how many such ops the process has made before: so it holds for the first
Piper voice a process loads, which device_lines() is in main() (one take per process)."""


@dataclass(frozen=True)
class Spec:
    """Every random choice of one scenario, drawn from (split, index)."""

    split: str
    index: int
    kind: str  # interruption, backchannel, none, tv, music, knocks (ROOM_KNOCKS, SOUND_THEN_PERSON: shards)
    echo_over_user_db: float
    echo_dbfs: float
    voice: tuple[str, str]
    text: str
    pitch: int
    speed: float
    onset_s: float  # in the labelled part, from its start (SOUND_THEN_PERSON: from the sound and gap_s)
    device_pause: tuple[float, float] | None  # the device is silent (thinking) in this span
    room: tuple[float, float, float]
    rt60_s: float
    spk_low_hz: float
    spk_high_hz: float
    spk_drive: float
    output_delay_ms: float
    fan_dbfs: float
    mic_gain_db: float  # the whole mic, before the ADC clips: hardware differs, people shout
    lead_in_s: float  # the device talks this long before the labelled part (0: a fresh front end)
    seed: int
    # SOUND_THEN_PERSON only: what comes first (a backchannel by the same person, or a burst of
    # knocks), when, and how long after it ends the person starts talking to the device.
    before: str = ""
    before_text: str = ""
    before_onset_s: float = 0.0
    gap_s: float = 0.0
    take: int = DEVICE_VOICE_SEED  # the device's lines: the shard's take (device_take)


def draw(split: str, index: int, kind: str | None = None) -> Spec:
    """The scenario `index` of `split`, from its seed (`kind` forces the kind, for extra shards)."""
    seed = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split] + index
    rng = np.random.default_rng(seed)
    drawn = rng.choice(["interruption", "backchannel", "none", "tv", "music", "knocks"],
                       p=[0.45, 0.15, 0.16, 0.10, 0.07, 0.07])
    kind = kind or drawn
    voices = TEST_VOICES if split == "test" else TRAIN_VOICES
    voice = voices[rng.integers(len(voices))]
    texts = {"interruption": INTERRUPTIONS, "backchannel": BACKCHANNELS, "tv": TV_LINES,
             SOUND_THEN_PERSON: INTERRUPTIONS}.get(kind, [""])
    if split == "test":  # test rooms: other sizes and absorption than training rooms
        room = (float(rng.uniform(5.5, 9.0)), float(rng.uniform(4.5, 7.0)), float(rng.uniform(2.6, 3.2)))
        rt60 = float(rng.uniform(0.25, 0.9))
    else:
        room = (float(rng.uniform(3.0, 6.0)), float(rng.uniform(2.5, 5.0)), float(rng.uniform(2.3, 2.8)))
        rt60 = float(rng.uniform(0.15, 0.7))
    pause = None
    if rng.random() < 0.15:
        start = float(rng.uniform(0.0, 7.0))
        pause = (start, start + float(rng.uniform(1.5, 3.0)))
    spec = Spec(
        split=split, index=index, kind=str(kind),
        echo_over_user_db=float(rng.uniform(-10.0, 20.0)), echo_dbfs=float(rng.uniform(-24.0, -14.0)),
        voice=voice, text=str(texts[rng.integers(len(texts))]),
        pitch=int(rng.integers(20, 80)), speed=float(rng.uniform(0.85, 1.2)),
        onset_s=float(rng.uniform(0.3, 8.5)), device_pause=pause, room=room, rt60_s=rt60,
        spk_low_hz=float(rng.uniform(150, 400)), spk_high_hz=float(rng.uniform(4500, 7500)),
        spk_drive=float(rng.uniform(0.8, 3.0)), output_delay_ms=float(rng.uniform(5, 150)),
        fan_dbfs=float(rng.uniform(-68, -45)), mic_gain_db=float(rng.uniform(-6.0, 6.0)),
        lead_in_s=round(float(rng.uniform(2.0, 8.0)) / FRAME_S) * FRAME_S if rng.random() < 0.5 else 0.0, seed=seed,
    )
    if kind != SOUND_THEN_PERSON:
        return spec
    more = np.random.default_rng(seed + 13)  # its own draws: the other kinds' stay as they were
    before = str(more.choice(["backchannel", "knocks"], p=[0.6, 0.4]))
    return replace(spec, before=before,
                   before_text=str(BACKCHANNELS[more.integers(len(BACKCHANNELS))]) if before == "backchannel" else "",
                   before_onset_s=float(more.uniform(0.3, 4.0)), gap_s=float(more.uniform(0.1, 2.0)))


# -- voices ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def say(engine: str, voice: str, text: str, pitch: int, speed: float) -> np.ndarray:
    """A synthetic person saying `text`, 16 kHz, leading/trailing silence trimmed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "say.wav"
        if engine == "espeak":
            cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(int(165 * speed)), "-w", str(out), text]
        elif engine == "flite":
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={1 / speed:.2f}",
                   "--setf", f"int_f0_target_mean={80 + pitch * 1.5:.0f}", "-t", text, "-o", str(out)]
        else:
            (Path(tmp) / "t.txt").write_text(text)
            cmd = ["text2wave", "-eval", f"(voice_{voice})", str(Path(tmp) / "t.txt"), "-o", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        audio = parse_wav(out.read_bytes(), out)
    x = resample(audio.mono(), audio.sample_rate_hz, RATE)
    if engine == "festival" and abs(speed - 1.0) > 0.02:  # tempo and pitch together, by resampling
        x = resample(x, RATE, int(RATE / speed))
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1].astype(np.float32) if len(loud) else x


def device_take(split: str, start: int) -> int:
    """The seed of the take of the device's lines a shard hears: validation and test keep
    DEVICE_VOICE_SEED; each training shard has a take of its own. Trained on one take of its
    lines, a model seems to learn that take by heart and to take others (its own voice on the
    device, where no two answers come out alike) for a person: in the closed loop such a model
    interrupted itself 22 times in 58 min, the same recipe with a take per shard 2 times in
    64 min (EXPERIMENTS.md, one seed). Validation shares the training lines; its take is none
    of these."""
    return DEVICE_VOICE_SEED if split != "train" else DEVICE_VOICE_SEED + 1 + start


def device_line(voice, text: str, length: float) -> np.ndarray:
    """One line in the device's voice, with the prosody noise the generator uses, at RATE."""
    from piper import SynthesisConfig

    cfg = SynthesisConfig(noise_scale=0.5, noise_w_scale=0.6, length_scale=length)
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)])
    return resample(audio, voice.config.sample_rate, RATE)


def seeded_device_voice(take: int = DEVICE_VOICE_SEED):
    """Piper joe, its noise seeded with `take`: the same lines from the same calls."""
    import onnxruntime

    from device.scenarios import _piper_voice

    onnxruntime.set_seed(take)
    return _piper_voice()


@functools.lru_cache(maxsize=1)
def device_lines(split: str, take: int) -> list[np.ndarray]:
    """The device's voice (Piper joe) for every line of the split (TEST_DEVICE_LINES for test,
    DEVICE_LINES otherwise), two prosodies each, in the take seeded by `take`."""
    voice = seeded_device_voice(take)
    texts = TEST_DEVICE_LINES if split == "test" else DEVICE_LINES
    return [device_line(voice, text, length) for text in texts for length in (0.95, 1.1)]


# -- sounds that are not a person talking to the device ---------------------------------------


def peak_1(x: np.ndarray) -> np.ndarray:
    """`x` scaled to a peak of 1, as float32 (silence stays silent)."""
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def music(seconds: float, rng) -> np.ndarray:
    """Music-like: a few harmonic notes in a rhythm, with a soft drum."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    beat = float(rng.uniform(0.3, 0.6))
    for start in np.arange(0, seconds, beat):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        seg = (t >= start) & (t < start + beat * 1.5)
        env = np.exp(-(t[seg] - start) * 3)
        out[seg] += sum(np.sin(2 * np.pi * f0 * k * t[seg]) / k for k in range(1, 6)) * env
        drum = (t >= start) & (t < start + 0.08)
        out[drum] += rng.standard_normal(drum.sum()) * np.exp(-(t[drum] - start) * 60) * 2
    return peak_1(out)


def knocks(seconds: float, rng, room_ir: np.ndarray | None = None) -> np.ndarray:
    """Knocks, taps and clatter: decaying bursts, peak 1; dry, or heard through `room_ir`."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 12))):
        start = int(rng.uniform(0, seconds - 0.3) * RATE)
        length = int(rng.uniform(0.02, 0.25) * RATE)
        tone = np.sin(2 * np.pi * rng.uniform(150, 2500) * np.arange(length) / RATE)
        burst = (rng.standard_normal(length) * rng.uniform(0.3, 1) + tone) * np.exp(-np.arange(length) / (length / 5))
        out[start : start + length] += burst * rng.uniform(0.3, 1.0)
    out = peak_1(out)
    return out if room_ir is None else peak_1(np.convolve(out, room_ir)[:n])


# -- rooms and the loudspeaker -------------------------------------------------------------


def room_irs(spec: Spec, rng) -> dict[str, np.ndarray]:
    """Impulse responses to the mic from the device's speaker, the user and a TV."""
    return room_irs_at(spec, rng, [(0.0, 0.0, 0.0)])[0]


def room_irs_at(spec: Spec, rng, mic_offsets) -> list[dict[str, np.ndarray]]:
    """room_irs() at several mics, each `mic_offsets[k]` metres (x, y, z) from the device's mic
    (an array: bench/two_mic_onset.py); the same draws from `rng`, so the same room."""
    import pyroomacoustics as pra

    dims = np.array(spec.room)
    absorption, max_order = pra.inverse_sabine(spec.rt60_s, dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=min(max_order, 12),
                       air_absorption=True)
    device = np.array([rng.uniform(0.5, dims[0] - 0.5), rng.uniform(0.3, 1.0), rng.uniform(0.7, 1.1)])
    mic = device + np.array([rng.uniform(-0.06, 0.06), rng.uniform(0.02, 0.08), rng.uniform(0.03, 0.08)])
    angle = rng.uniform(0, np.pi)
    distance = rng.uniform(0.6, min(3.0, dims[1] - 1.2))
    user = np.clip(mic + distance * np.array([np.cos(angle), np.sin(angle), 0.0]) + [0, 0, rng.uniform(0.2, 0.6)],
                   0.2, dims - 0.2)
    tv = np.array([rng.uniform(0.3, dims[0] - 0.3), dims[1] - 0.3, 1.0])
    for position in (device, user, tv):
        room.add_source(position)
    room.add_microphone(np.stack([np.clip(mic + np.asarray(offset), 0.05, dims - 0.05) for offset in mic_offsets],
                                 axis=1))
    room.compute_rir()
    return [{name: np.asarray(room.rir[m][i], dtype=np.float32) for i, name in enumerate(("device", "user", "tv"))}
            for m in range(len(mic_offsets))]


def loudspeaker(audio: np.ndarray, spec: Spec) -> np.ndarray:
    """A small driver: soft clipping, then its band limits."""
    clipped = np.tanh(spec.spk_drive * audio) / spec.spk_drive
    return np.convolve(clipped, bandpass_fir(RATE, spec.spk_low_hz, spec.spk_high_hz), mode="same").astype(np.float32)


def gain_to(signal: np.ndarray, dbfs: float) -> np.float32:
    """The factor that brings `signal`'s active level to `dbfs` (1 for silence)."""
    rms = active_rms(signal)
    return np.float32(10 ** (dbfs / 20) / rms) if rms > 0 else np.float32(1.0)


def at(signal: np.ndarray, dbfs: float) -> np.ndarray:
    return signal * gain_to(signal, dbfs)


# -- one scenario ---------------------------------------------------------------------------


def span(spec: Spec) -> tuple[int, int]:
    """Samples of the scenario's lead-in, and in all (the lead-in and the labelled part)."""
    lead = round(spec.lead_in_s / FRAME_S) * FRAME_SAMPLES
    return lead, lead + int(LABELLED_S * RATE)


def device_reference(spec: Spec, rng) -> np.ndarray:
    """What the device sends to its DAC: its lines one after another, with short gaps."""
    lead, total = span(spec)
    lines = device_lines(spec.split, spec.take)
    ref = np.zeros(total, dtype=np.float32)
    pos = 0
    while pos < total:
        line = lines[rng.integers(len(lines))] * np.float32(rng.uniform(0.7, 1.0))
        end = min(total, pos + len(line))
        ref[pos:end] = line[: end - pos]
        pos = end + int(rng.uniform(0.1, 0.6) * RATE)
    if spec.device_pause:
        a, b = (lead + int(t * RATE) for t in spec.device_pause)
        ref[a:b] = 0.0
    return ref


def echo_at(spec: Spec, ref: np.ndarray, device_ir: np.ndarray) -> np.ndarray:
    """The device's voice at a mic: through its loudspeaker, the room and the output delay."""
    delay = int(spec.output_delay_ms * RATE / 1000)
    echo = np.convolve(loudspeaker(ref, spec), device_ir)[: len(ref)]
    return np.concatenate([np.zeros(delay, np.float32), echo[: len(ref) - delay]])


def adc(mic: np.ndarray, spec: Spec) -> np.ndarray:
    """The mic's gain and its 16-bit converter."""
    mic = mic * np.float32(10 ** (spec.mic_gain_db / 20))
    return np.clip(np.round(mic * 32767), -32768, 32767).astype(np.float32) / 32767


def render(spec: Spec) -> dict:
    """The mic and reference of a scenario (lead-in and labelled part), and the frame labels."""
    rng = np.random.default_rng(spec.seed + 7)
    lead, total = span(spec)
    ref = device_reference(spec, rng)
    irs = room_irs(spec, rng)
    echo = at(echo_at(spec, ref, irs["device"]), spec.echo_dbfs)
    user_dbfs = spec.echo_dbfs - spec.echo_over_user_db
    mic = echo + pink_noise(total / RATE + 0.1, spec.fan_dbfs, seed=spec.seed)[:total]
    labels = np.zeros(total // FRAME_SAMPLES, dtype=np.int8)
    onset = lead + int(spec.onset_s * RATE)
    if spec.kind in ("interruption", "backchannel"):
        level = user_dbfs - (3.0 if spec.kind == "backchannel" else 0.0)
        add_voice(mic, labels, spec, irs["user"], spec.text, onset, level,
                  PERSON if spec.kind == "interruption" else BACKCHANNEL)
    elif spec.kind == SOUND_THEN_PERSON:
        first = lead + int(spec.before_onset_s * RATE)
        if spec.before == "backchannel":
            end = add_voice(mic, labels, spec, irs["user"], spec.before_text, first, user_dbfs - 3.0, BACKCHANNEL)
        else:
            burst = knocks(1.0, np.random.default_rng(spec.seed + 17))
            loud = np.flatnonzero(np.abs(burst) > 0.01)
            burst = burst[loud[0] : loud[-1] + 1]
            mic[first : first + len(burst)] += burst * np.float32(10 ** (rng.uniform(-20, -6) / 20))
            end = first + len(burst)
        onset = end + int(spec.gap_s * RATE)
        add_voice(mic, labels, spec, irs["user"], spec.text, onset, user_dbfs, PERSON)
    elif spec.kind == "tv":
        tv = say("espeak" if spec.index % 2 else "flite", "en-us+m3" if spec.index % 2 else "kal16", spec.text,
                 50, 1.0)
        tv = np.tile(tv, total // len(tv) + 1)[:total]
        mic += at(np.convolve(tv, irs["tv"])[:total], float(rng.uniform(-45, -32)))
    elif spec.kind == "music":
        mic += at(np.convolve(music(total / RATE, rng), irs["tv"])[:total], float(rng.uniform(-40, -28)))
    elif spec.kind in ("knocks", ROOM_KNOCKS):  # in the labelled part
        burst = knocks(LABELLED_S, rng, irs["user"] if spec.kind == ROOM_KNOCKS else None)
        mic[lead:] += burst * np.float32(10 ** (rng.uniform(-20, -6) / 20))
    mic = adc(mic, spec)
    return {"mic": mic, "ref": ref, "labels": labels, "onset": onset, "onset_frame": onset // FRAME_SAMPLES,
            "onset_s": (onset - lead) / RATE, "first_frame": lead // FRAME_SAMPLES}


def add_voice(mic: np.ndarray, labels: np.ndarray, spec: Spec, room_ir: np.ndarray, text: str, onset: int,
              dbfs: float, label: int) -> int:
    """The scenario's person saying `text` from `onset` (a sample) at `dbfs` through the room, its
    frames labelled `label`; returns the sample where the dry speech ends."""
    total = len(mic)
    dry = say(spec.voice[0], spec.voice[1], text, spec.pitch, round(spec.speed, 2))
    wet = at(np.convolve(dry, room_ir)[: len(dry) + RATE // 4], dbfs)
    end = min(total, onset + len(wet))
    mic[onset:end] += wet[: end - onset]
    # Frames where the person's direct speech is present (gaps under 200 ms bridged).
    active = np.abs(np.pad(dry, (0, max(0, end - onset - len(dry))))[: end - onset]) > 0.02 * np.abs(dry).max()
    frames = np.zeros(len(labels), bool)
    idx = (onset + np.flatnonzero(active)) // FRAME_SAMPLES
    frames[np.unique(idx[idx < len(labels)])] = True
    on = np.flatnonzero(frames)
    if len(on):
        frames[on[0] : on[-1] + 1] |= _bridge(frames[on[0] : on[-1] + 1], 6)
    labels[frames] = label
    return onset + len(dry)


def _bridge(frames: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill gaps of at most `max_gap` frames between active frames (pauses inside a phrase)."""
    out = frames.copy()
    on = np.flatnonzero(frames)
    for a, b in zip(on, on[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a:b] = True
    return out


@functools.lru_cache(maxsize=1)
def _raw_vad() -> SileroVad:
    return SileroVad(verified_path("silero_vad"))


def featurize(spec: Spec) -> dict:
    """Run a scenario through the device's front end; per-frame features and labels."""
    scene = render(spec)
    config = Config()
    # The device's front end: delay tracking, Speex AEC, Silero VAD (its own evidence source
    # is not used here; the light echo gate keeps it from loading the model being retrained).
    stack = ListeningStack(config, evidence=EchoGate(config.echo_gate))
    extractor = FeatureExtractor()
    raw_vad = _raw_vad()
    raw_vad.reset()
    mic, ref = scene["mic"], scene["ref"]
    frames = len(scene["labels"])
    features = np.zeros((frames, FEATURES), dtype=np.float32)
    vad_raw = np.zeros(frames, dtype=np.float32)
    ref_active = np.zeros(frames, dtype=bool)
    first = scene["first_frame"]  # the lead-in is not stored: only how long the device played in it
    # The VAD on the raw mic is for the VAD-only policies the evaluation compares; training
    # does not use it.
    with_raw_vad = spec.split != "train"
    for i in range(frames):
        sl = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        clean, aligned, vad = stack.front(mic[sl], ref[sl], i * FRAME_SAMPLES)
        features[i] = extractor(mic[sl], clean, aligned, vad)
        if with_raw_vad and i >= first:
            vad_raw[i] = raw_vad(mic[sl])
        ref_active[i] = np.sqrt(np.mean(ref[sl] ** 2)) > 0.003
    return {
        "features": features[first:].astype(np.float16), "labels": scene["labels"][first:],
        "vad_raw": vad_raw[first:].astype(np.float16), "ref_active": ref_active[first:],
        "onset_frame": scene["onset_frame"] - first, "lead_in_playing": int(ref_active[:first].sum()),
        # A sound-then-person scenario's onset comes from how long the sound lasted.
        "meta": asdict(spec) | ({"onset_s": scene["onset_s"]} if spec.kind == SOUND_THEN_PERSON else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["train", "val", "test"], required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0, help="first scenario index (for shards)")
    parser.add_argument("--kind", choices=["interruption", "backchannel", "none", "tv", "music", "knocks",
                                           SOUND_THEN_PERSON, ROOM_KNOCKS],
                        help="only this kind of scenario (an extra shard of what the model gets wrong)")
    parser.add_argument("--out", default=str(HERE / ".cache"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    for tool in ("espeak-ng", "flite", "text2wave"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: ./setup.sh installs espeak-ng, flite and festival")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    take = device_take(args.split, args.start)
    device_lines(args.split, take)  # synthesize the device's voice once, before the workers fork
    started = time.time()
    specs = [replace(draw(args.split, i, args.kind), take=take) for i in range(args.start, args.start + args.count)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(featurize, specs, chunksize=8))
    offsets = np.cumsum([0] + [len(r["labels"]) for r in results])
    name = args.split if args.start == 0 else f"{args.split}-{args.start}"
    np.savez_compressed(
        out / f"{name}.npz",
        features=np.concatenate([r["features"] for r in results]),
        labels=np.concatenate([r["labels"] for r in results]),
        vad_raw=np.concatenate([r["vad_raw"] for r in results]),
        ref_active=np.concatenate([r["ref_active"] for r in results]),
        offsets=offsets,
        onset_frames=np.array([r["onset_frame"] for r in results]),
        lead_in_playing=np.array([r["lead_in_playing"] for r in results]),
        meta=np.array([json.dumps(r["meta"]) for r in results]),
    )
    counts = np.bincount(np.concatenate([r["labels"] for r in results]), minlength=3)
    print(f"{args.split}: {args.count} scenarios, {offsets[-1]} frames (none/person/backchannel {counts.tolist()}) "
          f"in {time.time() - started:.0f} s -> {out / (name + '.npz')}")


if __name__ == "__main__":
    main()
