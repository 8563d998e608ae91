"""Regenerate the test recordings in this folder: .venv/bin/python tests/recordings/generate.py

The device's voice is Piper en_US-joe-medium (noise scales 0: deterministic); users are
espeak-ng variants; noise is seeded. Each user recording has a JSON sidecar with the
true speech onset (`onset_s`), the text and the voice. See README.md here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.audio.echo_path import EchoPath
from device.audio.wav import resample, write_wav
from device.scenarios import (DEVICE_LEVEL_DBFS, RATE_HZ, USER_VOICES, Recording, at_level, device_says,
                              interruption, no_user, pink_noise, user_says)

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent.parent / "device" / "data"
ANSWER_TEXT = (
    "Here is a short story. Once upon a time, in a small village by the sea, there lived an old "
    "fisherman and his wife. Every morning he rowed out past the rocks and cast his net into the "
    "cold grey water."
)


def main() -> None:
    answer, answer_rate = device_says(ANSWER_TEXT)
    answer = at_level(answer, DEVICE_LEVEL_DBFS)
    write_wav(HERE / "answer.wav", answer, answer_rate)  # 22050 Hz, as Piper makes it
    total_s = len(answer) / answer_rate

    interruption("Wait, stop, what about tomorrow?", USER_VOICES[0], at_s=2.5, total_s=total_s,
                 seed=1).save(HERE / "interrupt_f3.wav")
    # A user nearer the device: as loud at the mic as the device's own echo.
    interruption("Okay stop please.", USER_VOICES[1], at_s=5.0, total_s=total_s, level_dbfs=DEVICE_LEVEL_DBFS,
                 seed=2).save(HERE / "interrupt_m3.wav")
    no_user(total_s, noise_dbfs=-50.0, seed=3).save(HERE / "no_user_noise.wav")

    # detect: what a real device would record while playing the answer. REF is what went to
    # the DAC (here 24 kHz stereo, to show any rate and layout work); MIC is 16 kHz mono.
    answer_16k = resample(answer, answer_rate, RATE_HZ)
    length = int(total_s * RATE_HZ)
    answer_16k = np.pad(answer_16k, (0, max(0, length - len(answer_16k))))[:length]
    echo = EchoPath(RATE_HZ, room="small", gain_db=0.0, delay_ms=24.0, seed=4).apply(answer_16k)
    ref_24k = resample(answer, answer_rate, 24000)
    write_wav(HERE / "detect_ref.wav", np.stack([ref_24k, ref_24k], axis=1), 24000)
    user = interruption("No no, I meant the other one.", USER_VOICES[2], at_s=3.0, total_s=total_s,
                        noise_dbfs=None)
    user.audio = (user.audio + echo + pink_noise(total_s, -50.0, seed=5)).astype(np.float32)
    user.extra["echo"] = "small room, 0 dB, 24 ms"
    user.save(HERE / "detect_mic_interrupt.wav")
    echo_only = no_user(total_s, noise_dbfs=-50.0, seed=5)
    echo_only.audio = (echo_only.audio + echo).astype(np.float32)
    echo_only.extra["echo"] = "small room, 0 dB, 24 ms"
    echo_only.save(HERE / "detect_mic_echo_only.wav")


def korean() -> None:
    """For real Vosk with the Korean model from PyPI (the only Vosk model in the registries)."""
    audio = np.zeros(int(4.5 * RATE_HZ), dtype=np.float32)
    for at_s, word in ((0.5, "안녕하세요"), (2.5, "감사합니다")):
        speech = at_level(user_says(word, "ko", 150, 50), -26.0)
        audio[int(at_s * RATE_HZ) : int(at_s * RATE_HZ) + len(speech)] += speech
    Recording(audio + pink_noise(4.5, -60.0, seed=30), 0.5, "korean", "안녕하세요 감사합니다", "ko").save(
        HERE / "korean_words.wav")


def conversation() -> None:
    """The demo: ask for a story, interrupt it to ask the time, then ask it to go on."""
    total_s = 45.0
    audio = pink_noise(total_s, -55.0, seed=20)
    said = []
    # People raise their voice to talk over someone: the interruption is 6 dB louder.
    for at_s, text, level_dbfs in ((0.5, "Please tell me a story.", -26.0), (10.0, "Wait, what time is it?", -20.0),
                                   (16.0, "Okay, please continue the story.", -26.0)):
        line = interruption(text, USER_VOICES[0], at_s=at_s, total_s=total_s, level_dbfs=level_dbfs,
                            noise_dbfs=None)
        audio += line.audio
        said.append({"onset_s": line.onset_s, "text": text, "level_dbfs": level_dbfs})
    Recording(audio, said[1]["onset_s"], "conversation", voice=USER_VOICES[0][0],
              extra={"utterances": said}).save(DEMO / "demo_conversation.wav")


if __name__ == "__main__":
    main()
    korean()
    conversation()
