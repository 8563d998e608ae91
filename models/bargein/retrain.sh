#!/usr/bin/env bash
# The one command that retrains the barge-in classifier from scratch (after ./setup.sh):
#   models/bargein/retrain.sh
# Generates the synthetic scenarios (train/val/test), trains, exports bargein_gru.onnx with
# its sha256 in models/manifest.toml, and prints the held-out evaluation and the device's
# closed loop. About 2 hours on 2 cores (generation ~85 min, training ~40, the benches ~10);
# torch 2.13.0 (CPU) is installed into .venv for it. What it trains today has more false
# alarms than the shipped model and interrupts itself in the closed loop (MODEL_CARD.md,
# "How the shipped model was made"): judge it by the benches it ends with before shipping it.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip install --quiet -e '.[train]'
gen() { .venv/bin/python models/bargein/generate.py "$@"; }
gen --split train --count 2400                                # mixed scenarios 0-2399
gen --split train --count 2400 --start 2400                   # mixed scenarios 2400-4799
gen --split train --count 800 --start 100000 --kind knocks    # extra knocks and clatter
gen --split train --count 800 --start 105000 --kind room_knocks  # the same through the room: fine-tune
gen --split val --count 600
gen --split val --count 200 --start 305000 --kind room_knocks  # the fine-tune's validation too
gen --split test --count 1200
# Nobody talking to the device, held out too: hours of it for false alarms per hour, which a
# mixed test split of 1.0 h resolves to one event. Each shard is evaluated with the test split.
# 310000-313000 are a second draw, made on 2026-12-07 to tell chance from a real difference
# between two models (EXPERIMENTS.md, "a fresh held-out draw").
held_out=test
for shard in "none 400 300000" "tv 300 301000" "music 200 302000" "knocks 300 303000" \
             "none 300 310000" "tv 200 311000" "music 100 312000" "knocks 200 313000"; do
  read -r kind count start <<<"$shard"
  gen --split test --count "$count" --start "$start" --kind "$kind"
  held_out+=",test-$start"
done
# A person 0.1-2 s after a backchannel or a burst of knocks, in one stretch of device speech:
# reported on its own (the mixed splits hold one event each; training does not use it).
gen --split test --count 300 --start 304000 --kind sound_then_person
held_out+=",test-304000"
# A third draw, made on 2026-12-07 after the knock rule (bargein.transient_*) was chosen on
# validation, to check it on scenarios nobody had looked at (MODEL_CARD.md, "Knocks").
gen --split test --count 900 --start 320000
gen --split test --count 300 --start 323000 --kind knocks
gen --split test --count 200 --start 324000 --kind sound_then_person
# Knocks heard through the room (the training data's knocks are dry; EXPERIMENTS.md, "Knocks
# in a room"): held out, evaluated on their own.
gen --split test --count 300 --start 325000 --kind room_knocks
# Two stages, as the shipped model was made: a model trained from scratch on everything but the
# knocks heard through the room, then fine-tuned on those knocks with the first model as the
# teacher for every other kind of scenario, so that it keeps what it did there (MODEL_CARD.md,
# "How the shipped model was made"; training on all of it from scratch has not been tried).
base=models/bargein/.cache/base.onnx
.venv/bin/python models/bargein/train.py --leave-out-kind room_knocks --out "$base"
.venv/bin/python models/bargein/train.py --init "$base" --teacher "$base" --learn-kind room_knocks \
  --val-also val-305000 --lr 5e-4 --epochs 8
.venv/bin/python bench/classifier_eval.py --split val --sweep
.venv/bin/python bench/classifier_eval.py --split "$held_out"
.venv/bin/python bench/classifier_eval.py --split test-320000,test-323000,test-324000
.venv/bin/python bench/classifier_eval.py --split test-325000
# The device's closed loop (the whole device, ducking as it does, its own answers over room
# noise): the open loop above has disagreed with it about retrained models (EXPERIMENTS.md),
# so compare both with the shipped model's before committing a new one.
.venv/bin/python bench/bargein.py --jobs 2
# Backchannels by held-out voices, dry, open loop: where models trained on other data have
# stopped the device twice as often as the shipped one while both benches above agreed
# (EXPERIMENTS.md, "Trained to restart"; the shipped model: 80 of 480, the model before it 87).
.venv/bin/python bench/backchannels_dry.py --jobs 2
# The tests last: the recorded answers in tests/recordings have tripped a retrained model that
# both benches above passed (the device's voice resuming after a pause, EXPERIMENTS.md
# "Trained to restart"); a model that fails them must not be committed.
.venv/bin/pytest -q
