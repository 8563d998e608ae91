"""The barge-in classifier's tools in models/bargein/: the data generator makes the same data
on every run, holds out test voices and device sentences, and labels a person after another
sound; ensemble.py averages its members."""

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One run of the generator, cut down to the first of the device's lines (its voice is the one
# part of a scenario not drawn from numpy seeds) in the take of a shard (split, start),
# printing a digest of the audio.
ONE_LINE = """
import hashlib, importlib.util, sys
spec = importlib.util.spec_from_file_location("generate", "models/bargein/generate.py")
gen = importlib.util.module_from_spec(spec)
sys.modules["generate"] = gen
spec.loader.exec_module(gen)
split, start = sys.argv[1], int(sys.argv[2])
audio = gen.device_line(gen.seeded_device_voice(gen.device_take(split, start)), gen.DEVICE_LINES[0], 1.1)
assert len(audio) > gen.RATE, len(audio)
print(hashlib.sha256(audio.tobytes()).hexdigest())
"""


def tool(name: str):
    """A script of models/bargein/ imported as a module (registered while it loads: its
    dataclasses need that)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "models" / "bargein" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def run_once(split: str = "val", start: int = 0) -> str:
    done = subprocess.run([sys.executable, "-c", ONE_LINE, split, str(start)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_device_voice_in_the_training_data_is_the_same_on_every_run():
    # Without the seed Piper's noise differs from one process to the next.
    assert run_once() == run_once()


def test_each_training_shard_hears_its_own_take_of_the_device_lines():
    # Trained on one take a model seemed to learn it by heart and interrupted itself on the
    # device. Validation and test keep theirs, so their figures compare across days.
    validation = run_once("val")
    assert len({validation, run_once("train", 0), run_once("train", 2400)}) == 3
    assert run_once("test", 300000) == validation


def test_an_ensemble_runs_as_the_mean_of_its_members(tmp_path):
    # models/bargein/ensemble.py puts members side by side in one graph. A model paired with
    # itself must give its own probabilities frame after frame, its state carried through.
    import numpy as np
    import onnx

    from device.config import Config
    from device.listen.features import FEATURES
    from device.models import verified_path

    ensemble = tool("ensemble")
    shipped = verified_path(Config().bargein.classifier_model)
    pair = tmp_path / "pair.onnx"
    onnx.save(ensemble.combine([onnx.load(str(shipped))] * 2), str(pair))
    frames = np.random.default_rng(0).normal(size=(60, FEATURES)).astype(np.float32)
    assert ensemble.check(pair, [shipped, shipped], frames) < 1e-5


def test_the_test_split_holds_out_the_device_lines_too():
    # False alarms are counted on device speech the model never heard in training.
    gen = tool("generate")
    assert gen.TEST_DEVICE_LINES and not set(gen.TEST_DEVICE_LINES) & set(gen.DEVICE_LINES)
    assert not set(gen.TEST_VOICES) & set(gen.TRAIN_VOICES)


def test_a_sound_then_a_person_is_drawn_like_any_scenario_and_leaves_the_others_as_they_were():
    from dataclasses import replace

    gen = tool("generate")
    # The mixed splits draw as before the kind existed (figures are compared across days).
    spec = gen.draw("train", 3)
    assert (spec.kind, spec.text, round(spec.onset_s, 4), round(spec.echo_over_user_db, 4), spec.before) == (
        "interruption", "No, stop.", 4.5373, -5.2078, "")
    seq = gen.draw("test", 304000, gen.SOUND_THEN_PERSON)
    assert seq.before in ("backchannel", "knocks") and 0.1 <= seq.gap_s <= 2.0 and seq.text in gen.INTERRUPTIONS
    assert (seq.before_text in gen.BACKCHANNELS) == (seq.before == "backchannel")
    # Everything else is the draw an interruption with that index gets.
    plain = replace(seq, kind="interruption", before="", before_text="", before_onset_s=0.0, gap_s=0.0)
    assert plain == gen.draw("test", 304000, "interruption")


def test_knocks_in_a_room_reverberate_and_dry_ones_do_not():
    import numpy as np

    gen = tool("generate")
    dry = gen.knocks(1.0, np.random.default_rng(5))
    assert np.array_equal(gen.knocks(1.0, np.random.default_rng(5), np.ones(1, np.float32)), dry)
    t = np.arange(int(0.4 * gen.RATE))
    room = (np.exp(-t / (0.4 * gen.RATE / 6.9)) * np.random.default_rng(1).standard_normal(len(t))).astype(np.float32)
    room[0] = 4.0  # the direct sound, then 0.4 s of reverberation
    wet = gen.knocks(1.0, np.random.default_rng(5), room)
    assert len(wet) == len(dry) and np.abs(wet).max() == np.abs(dry).max() == 1.0
    assert np.mean(np.abs(wet) > 0.01) > 1.3 * np.mean(np.abs(dry) > 0.01)  # the room sustains them
    # The kind is drawn like the mixed knocks of the same index, for extra shards only.
    assert gen.draw("test", 325000, gen.ROOM_KNOCKS).room == gen.draw("test", 325000, "knocks").room


def test_a_backchannel_and_then_a_person_are_labelled_where_each_talks():
    import numpy as np

    gen = tool("generate")
    spec = gen.draw("train", 3)
    mic = np.zeros(10 * gen.RATE, dtype=np.float32)
    labels = np.zeros(len(mic) // gen.FRAME_SAMPLES, dtype=np.int8)
    direct = np.ones(1, dtype=np.float32)  # no room: the dry voice
    first = 2 * gen.RATE
    end = gen.add_voice(mic, labels, spec, direct, "Mm-hmm.", first, -30.0, gen.BACKCHANNEL)
    then = end + gen.RATE // 2
    gen.add_voice(mic, labels, spec, direct, spec.text, then, -30.0, gen.PERSON)
    frame = gen.FRAME_SAMPLES
    backchannel, person = np.flatnonzero(labels == gen.BACKCHANNEL), np.flatnonzero(labels == gen.PERSON)
    assert backchannel[0] == first // frame and backchannel[-1] <= end // frame
    assert person[0] == then // frame and person[-1] > then // frame + 5
    assert not labels[end // frame + 1 : then // frame].any()  # the gap between them: nobody
    assert np.abs(mic[first : end]).max() > 0.01 and not mic[end + 1 : then].any()
