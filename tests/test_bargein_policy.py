"""The barge-in policy on synthetic probability sequences (one entry per 32 ms frame)."""

from dataclasses import replace

from device.config import BargeInConfig
from device.listen.bargein import BargeInPolicy, EvidenceMemory, Forget, Phase
from device.listen.segmenter import FRAME_S

CFG = BargeInConfig(vad_threshold=0.5, onset_frames=1, tentative_user_prob=0.3, confirm_user_prob=0.8,
                    confirm_frames=3, reject_silence_frames=4, reject_weak_frames=4, max_tentative_ms=640,
                    confirm_sure_prob=1.1)  # off, but where a test turns it on


def run(policy, frames, active=True, talking=False):
    """frames: list of (vad, p_user); returns [(frame index, kind, reason)]. `talking`: the
    evidence also gives p(someone talks), here equal to p_user, as the classifier does."""
    out = []
    for i, (vad, p) in enumerate(frames):
        for d in policy.update(i * FRAME_S, vad, p, active, talking_prob=p if talking else None):
            out.append((i, d.kind, d.reason))
    return out


def test_person_talking_over_is_tentative_then_confirmed():
    frames = [(0.1, 0.0)] * 5 + [(0.9, 0.5), (0.95, 0.9), (0.97, 0.95), (0.98, 0.9)] + [(0.9, 0.9)] * 5
    assert run(BargeInPolicy(CFG), frames) == [(5, "bargein_tentative", ""), (8, "bargein_confirmed", "evidence")]


def test_onset_time_is_the_first_speech_frame():
    policy = BargeInPolicy(replace(CFG, onset_frames=2))
    decisions = []
    for i, (vad, p) in enumerate([(0.1, 0)] * 3 + [(0.9, 0.9)] * 6):
        decisions += policy.update(i * FRAME_S, vad, p, True)
    assert decisions[0].kind == "bargein_tentative" and decisions[0].onset_s == 3 * FRAME_S


def test_two_frames_the_classifier_is_sure_of_confirm_without_a_third():
    cfg = replace(CFG, confirm_sure_prob=0.95)
    sure = [(0.1, 0.0)] * 3 + [(0.9, 0.97)] * 4
    assert run(BargeInPolicy(cfg), sure) == [(3, "bargein_tentative", ""), (4, "bargein_confirmed", "evidence")]
    # Sure but not in a row, or not that sure: three frames of evidence, as always.
    broken = [(0.1, 0.0)] * 3 + [(0.9, 0.97), (0.9, 0.85), (0.9, 0.97)]
    assert run(BargeInPolicy(cfg), broken)[-1] == (5, "bargein_confirmed", "evidence")
    assert run(BargeInPolicy(cfg), [(0.1, 0.0)] * 3 + [(0.9, 0.9)] * 4)[-1] == (5, "bargein_confirmed", "evidence")
    # While the canceller is new: more sure frames (converging_sure_frames), still fewer than
    # the start-up evidence (converging_confirm_frames).
    for sure_frames, confirmed_at in ((4, 6), (8, 10)):
        cautious = BargeInPolicy(replace(cfg, converging_confirm_frames=8, converging_sure_frames=sure_frames))
        made = [(i, d.kind) for i, (vad, p) in enumerate(sure + [(0.9, 0.97)] * 6)
                for d in cautious.update(i * FRAME_S, vad, p, True, cautious=True)]
        assert made == [(3, "bargein_tentative"), (confirmed_at, "bargein_confirmed")]
    assert run(BargeInPolicy(CFG), sure)[-1] == (5, "bargein_confirmed", "evidence")  # turned off


def run_levels(policy, frames):
    """frames: list of (vad, p_user, level dB beyond the predicted echo) -> [(frame, kind)]."""
    return [(i, d.kind) for i, (vad, p, level) in enumerate(frames)
            for d in policy.update(i * FRAME_S, vad, p, True, talking_prob=p, level_db=level)]


BEFORE_A_SOUND = [(0.1, 0.0, 0.0)] * 4


def test_a_knock_dying_away_is_not_a_person():
    # Loud at once (28 dB above the frames before it), then only fading. The classifier's 0.9
    # for its first three frames (below confirm_sure_prob) would confirm it; the third is
    # dying away, so it is held back, and when the classifier gives up on the next frame
    # the evidence of the first two goes too.
    knock = BEFORE_A_SOUND + [(0.9, 0.9, 20.0), (0.9, 0.9, 28.0), (0.9, 0.9, 19.0), (0.9, 0.3, 14.0),
                              (0.9, 0.2, 12.0), (0.9, 0.1, 6.0), (0.9, 0.1, 2.0)] + [(0.1, 0.0, 0.0)] * 6
    cfg = replace(CFG, confirm_sure_prob=0.95)
    assert run_levels(BargeInPolicy(cfg), knock) == [(4, "bargein_tentative"), (14, "bargein_rejected")]
    # Without the levels, or with the rule off, the same probabilities confirm it.
    assert run(BargeInPolicy(cfg), [(v, p) for v, p, _ in knock])[:2] == [
        (4, "bargein_tentative", ""), (6, "bargein_confirmed", "evidence")]
    off = replace(cfg, transient_jump_db=float("inf"))
    assert run_levels(BargeInPolicy(off), knock)[:2] == [(4, "bargein_tentative"), (6, "bargein_confirmed")]
    # Two knocks in a burst: each dies away, their frames never add up to a person.
    burst = knock[:9] + [(0.9, 0.9, 25.0), (0.9, 0.9, 16.0), (0.9, 0.3, 11.0)] + [(0.1, 0.0, 0.0)] * 6
    assert [k for _, k in run_levels(BargeInPolicy(cfg), burst)] == ["bargein_tentative", "bargein_rejected"]
    # A classifier sure of a person (>= confirm_sure_prob) is believed even while it fades.
    sure = [(v, 0.97 if p == 0.9 else p, level) for v, p, level in knock]
    assert run_levels(BargeInPolicy(cfg), sure)[:2] == [(4, "bargein_tentative"), (5, "bargein_confirmed")]


def test_a_knock_is_never_sure_enough_to_skip_the_wait():
    # Two frames at confirm_sure_prob confirm a person; a frame dying away like a knock counts
    # towards that only at transient_sure_prob, which may be stricter. Here the classifier
    # gives the knock 0.92, sure enough for a voice but not for a knock dying away.
    cfg = replace(CFG, confirm_sure_prob=0.9, transient_sure_prob=0.95)
    knock = BEFORE_A_SOUND + [(0.9, 0.92, 28.0), (0.9, 0.92, 19.0), (0.9, 0.92, 14.0), (0.9, 0.3, 10.0),
                              (0.9, 0.1, 6.0)] + [(0.1, 0.0, 0.0)] * 6
    assert run_levels(BargeInPolicy(cfg), knock) == [(4, "bargein_tentative"), (12, "bargein_rejected")]
    # With the knock's threshold the sure rule's own, its second frame would confirm it.
    tied = replace(cfg, transient_sure_prob=0.9)
    assert run_levels(BargeInPolicy(tied), knock)[:2] == [(4, "bargein_tentative"), (5, "bargein_confirmed")]
    # A voice the classifier is as sure of, rising again with its next syllable: two frames.
    voice = BEFORE_A_SOUND + [(0.9, 0.92, 20.0), (0.9, 0.92, 24.0)] + [(0.9, 0.92, 22.0)] * 3
    assert run_levels(BargeInPolicy(cfg), voice)[:2] == [(4, "bargein_tentative"), (5, "bargein_confirmed")]


def test_a_voice_that_starts_loud_is_confirmed_when_it_rises_again_or_goes_on():
    # "Okay, ...": as sudden as a knock and 6.6 dB down in its third frame, so frames 6 and 7
    # are held back; the next syllable rises again (transient_rise_db) and they count.
    voice = BEFORE_A_SOUND + [(0.9, 0.9, 28.0), (0.9, 0.9, 32.0), (0.9, 0.9, 25.4), (0.9, 0.9, 24.0),
                              (0.9, 0.9, 27.5), (0.9, 0.9, 29.0)] + [(0.9, 0.9, 28.0)] * 4
    cfg = replace(CFG, confirm_sure_prob=0.95)
    assert run_levels(BargeInPolicy(cfg), voice) == [(4, "bargein_tentative"), (8, "bargein_confirmed")]
    # Fading on, with the classifier hearing a person throughout: it counts after
    # transient_hold_frames.
    fading = BEFORE_A_SOUND + [(0.9, 0.9, 28.0), (0.9, 0.9, 32.0), (0.9, 0.9, 25.0), (0.9, 0.9, 23.0),
                               (0.9, 0.9, 22.0), (0.9, 0.9, 21.0)]
    assert run_levels(BargeInPolicy(cfg), fading) == [(4, "bargein_tentative"), (8, "bargein_confirmed")]
    assert run_levels(BargeInPolicy(replace(cfg, transient_hold_frames=3)), fading)[-1] == (9, "bargein_confirmed")
    # A voice that rises gradually never counts as a knock.
    gradual = BEFORE_A_SOUND + [(0.9, 0.9, 6.0), (0.9, 0.9, 14.0), (0.9, 0.9, 20.0), (0.9, 0.9, 12.0)] + [
        (0.9, 0.9, 10.0)] * 3
    assert run_levels(BargeInPolicy(cfg), gradual) == [(4, "bargein_tentative"), (6, "bargein_confirmed")]


def test_one_frame_enough_confirms_in_the_same_frame():
    policy = BargeInPolicy(replace(CFG, confirm_frames=1))
    assert run(policy, [(0.9, 0.9)]) == [(0, "bargein_tentative", ""), (0, "bargein_confirmed", "evidence")]


def test_speech_that_stops_is_rejected_after_the_silence_frames():
    frames = [(0.9, 0.5)] + [(0.1, 0.0)] * 6
    assert run(BargeInPolicy(CFG), frames) == [(0, "bargein_tentative", ""), (4, "bargein_rejected", "silence")]


def test_speech_the_echo_explains_is_rejected():
    frames = [(0.9, 0.5)] + [(0.9, 0.05)] * 6
    assert run(BargeInPolicy(CFG), frames) == [(0, "bargein_tentative", ""), (4, "bargein_rejected", "echo")]


def test_undecided_speech_times_out_and_needs_a_fresh_onset():
    frames = [(0.9, 0.5)] * 40 + [(0.2, 0.0)] + [(0.9, 0.5)]  # above tentative, below confirm
    assert run(BargeInPolicy(CFG), frames) == [
        (0, "bargein_tentative", ""), (20, "bargein_rejected", "timeout"), (41, "bargein_tentative", "")]


def test_no_tentative_without_speech_or_evidence():
    policy = BargeInPolicy(CFG)
    assert run(policy, [(0.4, 1.0)] * 10 + [(0.9, 0.1)] * 10) == []
    assert policy.phase is Phase.WATCHING


def test_a_person_the_vad_misses_under_loud_echo_is_heard_when_the_classifier_is_sure():
    # The VAD sees only the cancelled mic, where loud echo residue masks the person.
    frames = [(0.1, 0.0)] * 3 + [(0.3, 0.95)] * 3 + [(0.2, 0.0)] * 4
    assert run(BargeInPolicy(CFG), frames, talking=True) == [
        (3, "bargein_tentative", ""), (5, "bargein_confirmed", "evidence")]
    # Unsure is not enough; above 1 the VAD alone decides what is speech, and it always does
    # for evidence that does not say whether anyone is talking (the energy-based echo gate).
    assert run(BargeInPolicy(CFG), [(0.3, 0.75)] * 10, talking=True) == []
    assert run(BargeInPolicy(replace(CFG, speech_talking_prob=1.1)), frames, talking=True) == []
    assert run(BargeInPolicy(CFG), frames) == []


def test_with_no_echo_in_the_mic_the_classifier_needs_the_vad_to_hear_something():
    # A knock while the device is silent (thinking, or between sentences): the classifier
    # takes it for a person, the VAD, which no echo masks now, hears nothing.
    knock = [(0.02, 0.95)] * 4 + [(0.02, 0.0)] * 6

    def run_playing(frames, playing):
        policy, out = BargeInPolicy(CFG), []
        for i, ((vad, p), on) in enumerate(zip(frames, playing)):
            out += [(i, d.kind) for d in policy.update(i * FRAME_S, vad, p, True, talking_prob=p, playing=on)]
        return out

    silent = [False] * len(knock)
    assert run_playing(knock, silent) == []
    # While the device plays, and for speech_talking_echo_ms (320 ms = 10 frames) after it
    # stopped, the echo can mask a person from the VAD: the classifier's word is enough.
    assert run_playing(knock, [True] * len(knock))[-1] == (2, "bargein_confirmed")
    stopped = [True] * 3 + [False] * 14  # the last frame with the device's voice is 2
    assert run_playing([(0.02, 0.0)] * 9 + knock[:4], stopped)[-1] == (11, "bargein_confirmed")
    assert run_playing([(0.02, 0.0)] * 13 + knock[:4], stopped) == []  # 11 frames after it
    # A person starting to talk in the silence: the VAD hears a little, which is enough.
    assert run_playing([(0.2, 0.95)] * 4, silent)[-1] == (2, "bargein_confirmed")


def test_confirmed_is_latched_until_inactive_then_watches_again():
    policy = BargeInPolicy(replace(CFG, confirm_frames=1))
    assert len(run(policy, [(0.9, 0.9)] * 5)) == 2
    assert policy.phase is Phase.CONFIRMED
    run(policy, [(0.9, 0.9)], active=False)
    assert policy.phase is Phase.INACTIVE
    assert [k for _, k, _ in run(policy, [(0.9, 0.9)])] == ["bargein_tentative", "bargein_confirmed"]


def test_inactive_device_never_decides():
    assert run(BargeInPolicy(CFG), [(0.99, 0.99)] * 20, active=False) == []


def test_rejection_then_a_new_onset_is_a_new_tentative():
    frames = [(0.9, 0.5)] + [(0.1, 0)] * 4 + [(0.9, 0.9)] * 4
    kinds = [k for _, k, _ in run(BargeInPolicy(CFG), frames)]
    assert kinds == ["bargein_tentative", "bargein_rejected", "bargein_tentative", "bargein_confirmed"]


def test_while_the_canceller_converges_more_evidence_is_needed():
    frames = [(0.1, 0.0)] * 2 + [(0.95, 0.9)] * 12
    cautious = BargeInPolicy(replace(CFG, converging_confirm_frames=8))
    out = []
    for i, (vad, p) in enumerate(frames):
        out += [(i, d.kind) for d in cautious.update(i * FRAME_S, vad, p, True, cautious=True)]
    assert out == [(2, "bargein_tentative"), (9, "bargein_confirmed")]  # 8 frames of evidence, not 3


def test_a_person_who_starts_during_rejected_echo_is_still_heard():
    # Echo opens a tentative barge-in and is rejected as echo while the speech goes on; then a
    # person's strong evidence arrives without a pause in the speech.
    frames = [(0.9, 0.5)] + [(0.9, 0.1)] * 4 + [(0.9, 0.95)] * 6
    out = run(BargeInPolicy(CFG), frames)
    assert out[:2] == [(0, "bargein_tentative", ""), (4, "bargein_rejected", "echo")]
    assert (5, "bargein_tentative", "") in out and out[-1][1] == "bargein_confirmed"


def onsets(policy, frames):
    """frames: list of (vad, p_user); returns [(frame index, kind, onset frame index)]."""
    return [(i, d.kind, round(d.onset_s / FRAME_S))
            for i, (vad, p) in enumerate(frames) for d in policy.update(i * FRAME_S, vad, p, True)]


def test_a_person_rejected_in_a_pause_keeps_their_first_onset():
    # "Wait," (a frame of evidence), a pause long enough to reject, then "what time is it?":
    # the pre-roll must still hold "wait".
    frames = [(0.9, 0.5), (0.9, 0.9)] + [(0.1, 0.0)] * 5 + [(0.9, 0.9)] * 4
    assert onsets(BargeInPolicy(CFG), frames) == [
        (0, "bargein_tentative", 0), (5, "bargein_rejected", 0), (7, "bargein_tentative", 0),
        (9, "bargein_confirmed", 0)]


def test_a_person_after_rejected_echo_has_their_own_onset():
    # The device's echo opens a tentative barge-in the classifier never takes for a person,
    # and is rejected; a person starts soon after. Their onset must be their own, or the
    # pre-roll would begin with the device's words (Whisper then transcribed those instead).
    for rejected in ([(0.9, 0.5)] + [(0.1, 0.0)] * 5, [(0.9, 0.5)] + [(0.9, 0.1)] * 4):
        out = onsets(BargeInPolicy(CFG), rejected + [(0.9, 0.95)] * 4)
        person = len(rejected)
        assert out[1][1] == "bargein_rejected"
        assert out[2:] == [(person, "bargein_tentative", person), (person + 2, "bargein_confirmed", person)]


def test_a_person_long_after_a_rejection_has_their_own_onset():
    # Rejected for silence at frame 4; the person comes 27 frames (0.86 s, > rejoin_ms) later.
    frames = [(0.9, 0.9)] + [(0.1, 0.0)] * 30 + [(0.9, 0.9)] * 3
    assert onsets(BargeInPolicy(CFG), frames)[-2:] == [(31, "bargein_tentative", 31), (33, "bargein_confirmed", 31)]


def run_with_talking(policy, frames):
    """frames: list of (vad, p_user, p_talking); returns [(frame index, kind, reason)]."""
    out = []
    for i, (vad, p, talking) in enumerate(frames):
        out += [(i, d.kind, d.reason) for d in policy.update(i * FRAME_S, vad, p, True, talking_prob=talking)]
    return out


def test_a_backchannel_ducks_and_the_device_resumes_when_it_ends():
    # "Mm-hmm": someone talks (p_talking high), but not to the device (p_user low).
    frames = [(0.1, 0.0, 0.0)] * 3 + [(0.9, 0.1, 0.9)] * 8 + [(0.1, 0.0, 0.0)] * 6
    assert run_with_talking(BargeInPolicy(CFG), frames) == [
        (3, "bargein_tentative", ""), (14, "bargein_rejected", "silence")]  # not "echo": it stayed ducked


def test_a_backchannel_that_turns_into_a_command_is_confirmed():
    # "Okay, that's enough.": a backchannel at first, then a person talking to the device.
    frames = [(0.9, 0.2, 0.9)] * 5 + [(0.9, 0.9, 0.95)] * 4
    assert run_with_talking(BargeInPolicy(CFG), frames) == [
        (0, "bargein_tentative", ""), (7, "bargein_confirmed", "evidence")]


def remember(frames, config=CFG, max_rewind=64):
    """frames: (vad, p_user, p_talking, p_backchannel); the policy and the evidence memory
    frame by frame, as the listening stack runs them. Returns [(frame index, what to forget)]
    and the policy's decisions."""
    policy, memory = BargeInPolicy(config), EvidenceMemory(config, max_rewind)
    forgets, decisions = [], []
    for i, (vad, p, talking, backchannel) in enumerate(frames):
        made = policy.update(i * FRAME_S, vad, p, True, talking_prob=talking)
        decisions += [(i, d.kind, d.reason) for d in made]
        what = memory.update(made, vad, talking, backchannel)
        if what is not None:
            forgets.append((i, what))
    return forgets, decisions


QUIET, ECHO = (0.1, 0.0, 0.0, 0.0), (0.9, 0.0, 0.0, 0.0)
MM_HMM = (0.9, 0.1, 0.9, 0.8)  # someone talking, to the classifier a backchannel
KNOCK = (0.9, 0.5, 0.5, 0.02)  # a sound the classifier half takes for a person, never for a backchannel


def test_a_backchannel_rejected_for_silence_is_forgotten_back_to_before_it():
    forgets, decisions = remember([ECHO] * 10 + [MM_HMM] * 8 + [QUIET] * 4)
    assert decisions == [(10, "bargein_tentative", ""), (21, "bargein_rejected", "silence")]
    # Frames 10..21 heard since the sound began, and two more before it: back to the state before frame 8.
    assert forgets == [(21, Forget(rewind_frames=14))]


def test_other_sounds_rejected_for_silence_restart_the_classifier_afresh():
    forgets, decisions = remember([ECHO] * 10 + [KNOCK] * 2 + [QUIET] * 4)
    assert decisions[-1] == (15, "bargein_rejected", "silence")
    assert forgets == [(15, Forget(rewind_frames=None))]


def test_a_long_backchannel_is_forgotten_once_it_has_gone_quiet():
    # Rejected for a timeout while it still goes on: the classifier keeps weighing it, and
    # forgets it only once the mic has been quiet for reject_silence_frames.
    fading = (0.9, 0.1, 0.5, 0.4)  # too weak to open a barge-in again at once
    forgets, decisions = remember([ECHO] * 5 + [MM_HMM] * 21 + [fading] * 3 + [QUIET] * 5)
    assert decisions == [(5, "bargein_tentative", ""), (25, "bargein_rejected", "timeout")]
    assert forgets == [(32, Forget(rewind_frames=32 - 3 + 1))]  # back to before frame 3
    # Loud enough to open a new barge-in at once: the same sound, forgotten from its start.
    forgets, decisions = remember([ECHO] * 5 + [MM_HMM] * 25 + [QUIET] * 6)
    assert [d[1:] for d in decisions] == [("bargein_tentative", ""), ("bargein_rejected", "timeout"),
                                          ("bargein_tentative", ""), ("bargein_rejected", "silence")]
    assert forgets == [(33, Forget(rewind_frames=33 - 3 + 1))]


def test_sounds_rejected_as_echo_are_kept_and_forgetting_can_be_turned_off():
    # Not a backchannel: rejected as echo, the classifier's state carries on, as before.
    weak = [(0.9, 0.5, 0.5, 0.1)] + [(0.9, 0.05, 0.05, 0.0)] * 4 + [QUIET] * 8
    forgets, decisions = remember([ECHO] * 3 + weak)
    assert [d[2] for d in decisions if d[1] == "bargein_rejected"] == ["echo"] and forgets == []
    never = replace(CFG, forget_backchannel_prob=1.1)  # as a knock: after silence, afresh
    assert remember([ECHO] * 10 + [MM_HMM] * 8 + [QUIET] * 4, never)[0] == [(21, Forget(rewind_frames=None))]


def test_a_new_sound_before_the_quiet_or_too_long_ago_keeps_the_state():
    # The person who backchanneled goes on talking: that barge-in is weighed from where it is.
    forgets, decisions = remember([ECHO] * 5 + [MM_HMM] * 25 + [QUIET] * 2 + [(0.9, 0.9, 0.9, 0.0)] * 4)
    assert decisions[-1][1] == "bargein_confirmed" and forgets == []
    # The mic stays busy with the device's echo longer than the classifier keeps its states.
    forgets, _ = remember([ECHO] * 5 + [MM_HMM] * 25 + [ECHO] * 40 + [QUIET] * 6, max_rewind=48)
    assert forgets == []
