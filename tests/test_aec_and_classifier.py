"""Echo cancellation, delay tracking, features and the barge-in classifier on real audio."""

import numpy as np
import pytest

from conftest import onset_of
from device.audio.echo_path import EchoPath
from device.audio.wav import read_mono
from device.config import Config, with_overrides
from device.listen.aec import ConvergenceWatch, DelayEstimator, NoCanceller, SpeexCanceller, is_playing
from device.listen.classifier import BargeInClassifier
from device.listen.echo_gate import EchoGate
from device.listen.features import FEATURES, MARGIN_INDEX, VAD_INDEX, FeatureExtractor, mel_filterbank
from device.listen.stack import CLEANED_HISTORY_S, ListeningStack
from device.listen.vad import FRAME_SAMPLES
from device.models import verified_path


def frames(*signals):
    n = min(len(s) for s in signals)
    for i in range(0, n - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield i, tuple(s[i : i + FRAME_SAMPLES] for s in signals)


@pytest.fixture(scope="module")
def answer(recordings):
    return read_mono(recordings / "answer.wav", 16000)


@pytest.mark.parametrize("delay_ms", [0.0, 24.0, 90.0])
def test_delay_estimator_finds_the_output_to_mic_delay(answer, delay_ms):
    echo = EchoPath(16000, room="small", delay_ms=delay_ms, seed=1).apply(answer)
    estimator = DelayEstimator()
    for _, (mic, ref) in frames(echo, answer):
        estimator.update(mic, ref)
    # + ~4 ms: the loudspeaker filter's own group delay.
    assert estimator.delay_samples is not None and abs(estimator.delay_samples / 16 - delay_ms - 4) <= 2


def test_delay_estimator_waits_while_nothing_plays():
    estimator = DelayEstimator()
    noise = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.01
    for _, (mic, ref) in frames(noise, np.zeros_like(noise)):
        estimator.update(mic, ref)
    assert estimator.delay_samples is None and estimator.estimates == 0


@pytest.mark.parametrize("delay_ms, canceller_shifted", [(90.0, False), (150.0, True)])
def test_the_classifier_gets_the_reference_lined_up_with_the_echo(answer, delay_ms, canceller_shifted):
    echo = EchoPath(16000, room="none", delay_ms=delay_ms, seed=1).apply(answer)
    stack = ListeningStack(Config())
    margin = round(Config().aec.delay_margin_ms * 16)
    for i, (mic, ref) in frames(echo, answer):
        for_canceller, lined_up = stack.align(mic, ref, i)
    delay = stack.delay.delay_samples
    assert delay is not None and abs(delay / 16 - delay_ms - 4) <= 2  # + the loudspeaker filter
    # The last frame: the reference as it was `delay - margin` samples earlier.
    assert np.array_equal(lined_up, answer[i - (delay - margin) : i - (delay - margin) + FRAME_SAMPLES])
    # The canceller's filter covers delays up to aec.max_unshifted_delay_ms (120) by itself.
    assert np.array_equal(for_canceller, lined_up if canceller_shifted else answer[i : i + FRAME_SAMPLES])


def test_speex_removes_the_echo_and_keeps_the_user(answer, recordings):
    stack = ListeningStack(Config())
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=2).apply(answer)
    user = read_mono(recordings / "interrupt_m3.wav", 16000)[: len(echo)]
    onset = onset_of("interrupt_m3.wav")
    mic = echo[: len(user)] + user
    clean = np.zeros_like(mic)
    for i, (m, r) in frames(mic, answer):
        clean[i : i + FRAME_SAMPLES], _, _ = stack.front(m, r, i)
    before = slice(int(3 * 16000), int((onset - 0.2) * 16000))
    erle = 10 * np.log10(np.mean(echo[before] ** 2) / np.mean(clean[before] ** 2))
    assert erle > 10  # dB of echo removed once converged
    during = slice(int(onset * 16000), int((onset + 1.0) * 16000))
    kept = np.dot(clean[during], user[during]) / np.dot(user[during], user[during])
    assert 0.7 < kept < 1.3  # the user's voice passes through, not cancelled with the echo
    assert SpeexCanceller().process(mic[:512], answer[:512]).shape == (512,)
    assert np.array_equal(NoCanceller().process(mic[:512], answer[:512]), mic[:512])


def test_the_pre_roll_is_the_cancelled_mic_and_keeps_the_last_seconds(answer):
    stack = ListeningStack(Config())
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=2).apply(answer)
    seconds = CLEANED_HISTORY_S + 1
    cleaned = [stack.process(m, r, i, active=True).clean for i, (m, r) in frames(echo[: seconds * 16000], answer)]
    heard = np.concatenate(cleaned)
    end = len(heard)
    start, preroll = stack.cleaned_since(end - 4800)  # 300 ms back
    assert start == end - 4800 and np.array_equal(preroll, heard[start:])
    # Older than the history: it starts where the history does, and says so.
    start, preroll = stack.cleaned_since(0)
    assert start == end - CLEANED_HISTORY_S * 16000 and np.array_equal(preroll, heard[start:])
    assert stack.cleaned_since(end)[1].size == 0


def test_features_have_the_trained_shape():
    bank = mel_filterbank()
    assert bank.shape == (24, 257) and np.all(bank.sum(axis=1) > 0)
    x = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    f = FeatureExtractor()(x, x * 0.1, x, 0.3)
    assert f.shape == (FEATURES,) and f.dtype == np.float32 and f[VAD_INDEX] == np.float32(0.3)
    assert f[0] == pytest.approx(f[48], abs=1e-5)  # the same signal gives the same log-mel


def residual_features(mic, ref, extractor=None):
    """Features of every frame through the device's front end (delay, Speex, VAD)."""
    stack = ListeningStack(Config(), evidence=EchoGate(Config().echo_gate))
    extractor = extractor or FeatureExtractor()
    out = []
    for i, (m, r) in frames(mic, ref):
        clean, lined_up, vad = stack.front(m, r, i)
        out.append(extractor(m, clean, lined_up, vad))
    return np.array(out)


def test_residual_echo_features_predict_the_echo_and_a_person_rises_above_it(answer, recordings):
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=3).apply(answer)
    user = read_mono(recordings / "interrupt_f3.wav", 16000)[: len(echo)]
    onset = onset_of("interrupt_f3.wav")
    f = residual_features(echo[: len(user)] + user, answer)
    t = np.arange(len(f)) * 0.032
    clean, expected, margin_db = f[:, 24:48], f[:, 72:96], f[:, MARGIN_INDEX] * 10
    rms = lambda x: np.sqrt(np.mean(x**2))  # noqa: E731
    echo_only = np.array([rms(r) > 0.01 and rms(u) < 0.003 for _, (r, u) in frames(answer[: len(user)], user)])
    settled = (t > onset + 2.5) & echo_only[: len(t)]  # the device plays, the recording holds room noise
    assert settled.sum() > 50
    # The echo left by the canceller is predicted per band to within a few dB (log10 units:
    # 0.8 = 8 dB; a model that had learned nothing would predict the noise floor, 15+ dB
    # under it), and the mic never rises far above the prediction.
    assert np.median(np.abs(clean[settled] - expected[settled])) < 0.8
    assert margin_db[settled].max() < 8
    # The person's syllables stand 10+ dB above the prediction (14.7 dB at the 90th percentile
    # when this was written).
    person = (t >= onset) & (t < onset + 2.0)
    assert np.percentile(margin_db[person], 90) > 10


def test_restart_keeps_the_residual_echo_model_and_reset_clears_it(answer):
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=3).apply(answer)
    classifier = BargeInClassifier(verified_path("bargein_classifier"))
    stack = ListeningStack(Config(), evidence=classifier)
    for i, (m, r) in frames(echo[: 6 * 16000], answer):
        clean, lined_up, vad = stack.front(m, r, i)
        classifier.update(m, clean, lined_up, vad, True)
    learned = classifier._features._residual.expected.copy()
    assert learned.sum() > 0
    classifier.restart()  # the device starts a new answer: the room is the same
    assert np.array_equal(classifier._features._residual.expected, learned)
    classifier.reset()  # a new stream
    assert classifier._features._residual.expected.sum() == 0


def run_stack(mic, ref, config=None):
    stack = ListeningStack(config or Config())
    person, decisions = [], []
    for i, (m, r) in frames(mic, ref):
        report = stack.process(m, r, i, active=True)
        person.append(report.user_prob)
        decisions += [(d.kind, report.end_s) for d in report.decisions]
    return np.array(person), decisions


def test_rewind_forgets_the_last_frames_as_if_they_had_not_been_heard():
    rng = np.random.default_rng(7)
    before, sound, after = (rng.normal(0, 1, (n, FEATURES)).astype(np.float32) for n in (20, 12, 10))
    heard, never = (BargeInClassifier(verified_path("bargein_classifier")) for _ in range(2))
    for f in np.concatenate([before, sound]):
        heard.update_features(f)
    heard.rewind(len(sound))
    for f in before:
        never.update_features(f)
    assert [heard.update_features(f) for f in after] == [never.update_features(f) for f in after]
    heard.restart()  # nothing heard since: back to the fresh state, not further
    for f in sound[:3]:
        heard.update_features(f)
    heard.rewind(10)
    assert not heard._state.any()
    with pytest.raises(ValueError, match="1..64 frames"):
        heard.rewind(65)


def test_classifier_hears_a_person_over_the_echo_and_not_the_echo(answer, recordings):
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=3).apply(answer)
    user = read_mono(recordings / "interrupt_f3.wav", 16000)[: len(echo)]
    onset = onset_of("interrupt_f3.wav")
    person, decisions = run_stack(echo[: len(user)] + user, answer)
    frame = np.arange(len(person)) * 0.032
    assert np.percentile(person[(frame > 1.0) & (frame < onset - 0.2)], 99) < 0.5  # echo only
    assert person[(frame >= onset) & (frame < onset + 0.6)].max() > 0.9  # the person
    confirmed = [t for kind, t in decisions if kind == "bargein_confirmed"]
    assert confirmed and onset < confirmed[0] < onset + 0.5
    _, echo_decisions = run_stack(echo, answer)
    assert not [d for d in echo_decisions if d[0] == "bargein_confirmed"]


def test_the_device_does_not_interrupt_itself_where_its_voice_resumes_after_a_pause(answer):
    """The answer alone through 12 small rooms and 3 output delays. It pauses for 0.32 s at
    4.29 s, too short for aec.resume_caution_s; models trained with restarts confirmed the
    echo just after it in 3 of these 36 (EXPERIMENTS.md, "Trained to restart")."""
    confirmed = []
    for seed in range(12):
        for delay_ms in (0.0, 24.0, 90.0):
            echo = EchoPath(16000, room="small", delay_ms=delay_ms, seed=seed).apply(answer)
            _, decisions = run_stack(echo, answer[: len(echo)])
            confirmed += [(seed, delay_ms, t) for kind, t in decisions if kind == "bargein_confirmed"]
    assert not confirmed


def test_backchannel_setting_changes_what_counts(answer):
    model = verified_path("bargein_classifier")
    resume, interrupt = BargeInClassifier(model), BargeInClassifier(model, backchannels_interrupt=True)
    x = answer[16000:16512]
    assert interrupt.update(x, x, x, 0.9, True) >= resume.update(x, x, x, 0.9, True)
    assert with_overrides(Config(), bargein={"backchannels": "interrupt"}).bargein.backchannels == "interrupt"


def espeak(text: str, voice: str, tmp_path) -> np.ndarray:
    """A held-out synthetic person (a voice the classifier never trained on), 16 kHz, trimmed."""
    import subprocess

    out = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True)
    x = read_mono(out, 16000)
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1]


def over_the_echo(answer, words, at_s, echo_over_user_db, seed):
    """The device's echo with `words` said over it at `at_s`, echo `echo_over_user_db` louder."""
    echo = EchoPath(16000, room="small", delay_ms=24.0, seed=seed).apply(answer)[: 10 * 16000]
    rms = lambda x: np.sqrt(np.mean(x[np.abs(x) > 0.01 * np.abs(x).max()] ** 2))  # noqa: E731
    start = int(at_s * 16000)
    mic = echo.copy()
    mic[start : start + len(words)] += words * (rms(echo) / rms(words) / 10 ** (echo_over_user_db / 20))
    return mic, answer[: len(mic)]


@pytest.mark.parametrize("text", ["Stop.", "Wait."])
def test_short_commands_interrupt(answer, tmp_path, text):
    words = espeak(text, "en-gb-scotland+m3", tmp_path)
    mic, ref = over_the_echo(answer, words, at_s=5.0, echo_over_user_db=6.0, seed=4)
    _, decisions = run_stack(mic, ref)
    confirmed = [t for kind, t in decisions if kind == "bargein_confirmed"]
    assert confirmed and 5.0 < confirmed[0] < 5.0 + 0.5, decisions


def test_backchannels_resume_by_default_and_interrupt_when_configured(answer, tmp_path):
    words = espeak("Mm-hmm.", "en-029+f4", tmp_path)
    mic, ref = over_the_echo(answer, words, at_s=5.0, echo_over_user_db=0.0, seed=5)
    _, decisions = run_stack(mic, ref)
    assert not [t for kind, t in decisions if kind == "bargein_confirmed"], decisions
    interrupt = with_overrides(Config(), bargein={"backchannels": "interrupt"})
    _, decisions = run_stack(mic, ref, interrupt)
    confirmed = [t for kind, t in decisions if kind == "bargein_confirmed"]
    assert confirmed and 5.0 < confirmed[0] < 5.0 + 0.8, decisions


def test_a_command_after_a_backchannel_in_the_same_answer_still_interrupts(answer, tmp_path):
    backchannel = espeak("Mm-hmm.", "en-029+f4", tmp_path)
    command = espeak("Stop.", "en-029+f4", tmp_path)
    mic, ref = over_the_echo(answer, backchannel, at_s=5.0, echo_over_user_db=0.0, seed=5)
    start = int(8.0 * 16000)
    mic[start : start + len(command)] += command * (np.abs(mic).max() / np.abs(command).max() / 2)
    _, decisions = run_stack(mic, ref)
    confirmed = [t for kind, t in decisions if kind == "bargein_confirmed"]
    assert confirmed and 8.0 < confirmed[0] < 8.5, decisions


def test_a_command_right_after_a_backchannel_is_heard_because_the_backchannel_is_forgotten(answer, tmp_path):
    # "Yeah." and, 0.2 s after it, "Wait." (a voice the classifier never trained on). A state
    # restarted afresh after the "Yeah." is slow for half a second and misses the "Wait.";
    # gone back to before the "Yeah." it is as quick as if nobody had spoken.
    backchannel, command = espeak("Yeah.", "en-029+f4", tmp_path), espeak("Wait.", "en-029+f4", tmp_path)
    mic, ref = over_the_echo(answer, backchannel, at_s=4.0, echo_over_user_db=0.0, seed=5)
    start = int(4.0 * 16000) + len(backchannel) + int(0.2 * 16000)
    mic[start : start + len(command)] += command * np.sqrt(np.mean(backchannel**2) / np.mean(command**2))
    at_s = start / 16000
    for forget, heard in ((0.5, True), (1.1, False)):  # the default; never (a fresh state)
        _, decisions = run_stack(mic, ref, with_overrides(Config(), bargein={"forget_backchannel_prob": forget}))
        confirmed = [t for kind, t in decisions if kind == "bargein_confirmed"]
        assert bool(confirmed and at_s < confirmed[0] < at_s + 0.5) == heard, (forget, at_s, decisions)


def test_caution_only_while_the_canceller_is_new_and_the_device_plays(answer):
    stack = ListeningStack(with_overrides(Config(), aec={"converge_s": 1.0}))
    silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    assert not stack._converging(is_playing(silence))  # nothing played: no echo to leak
    frames = [answer[i : i + FRAME_SAMPLES] for i in range(0, 3 * 16000, FRAME_SAMPLES)]
    talking = [stack._converging(is_playing(frame)) for frame in frames]
    assert any(talking[:16]) and not talking[-1]  # trusted once it has heard ~1 s of the device
    no_canceller = ListeningStack(with_overrides(Config(), aec={"engine": "none"}))
    assert no_canceller._converging(is_playing(answer[:512])) is False


def test_caution_again_when_the_device_resumes_after_a_silence():
    watch = ConvergenceWatch(converge_s=0.32, resume_s=0.32)  # 10 frames each
    assert all(watch.update(True) for _ in range(9))  # the canceller is new (trusted from its 10th frame)
    assert not any(watch.update(True) for _ in range(20))  # converged, talking on
    assert not any(watch.update(False) for _ in range(16))  # half a second between sentences...
    assert not any(watch.update(True) for _ in range(5))  # ...is not a resumption
    assert not any(watch.update(False) for _ in range(25))  # 0.8 s of silence (a new answer)...
    assert [watch.update(True) for _ in range(12)] == [True] * 10 + [False] * 2  # ...then 0.32 s of caution
    off = ConvergenceWatch(converge_s=0.32)  # resume_s 0: as before
    for playing in [True] * 30 + [False] * 20:
        off.update(playing)
    assert not off.update(True)
