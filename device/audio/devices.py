"""Finding PortAudio devices by ALSA name, PortAudio name, substring or index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioDeviceError

_ALSA_HW = re.compile(r"^(?:plug)?hw:(?:CARD=)?(?P<card>[^,]+)(?:,(?:DEV=)?(?P<dev>\d+))?$")


@dataclass(frozen=True)
class DeviceInfo:
    """What PortAudio says about one device."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate_hz: float


def list_devices(pa) -> list[DeviceInfo]:
    """Every device a PyAudio instance sees."""
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        out.append(DeviceInfo(i, d["name"], d["maxInputChannels"], d["maxOutputChannels"], d["defaultSampleRate"]))
    return out


def alsa_card_number(card: str, proc_asound: Path = Path("/proc/asound")) -> int | None:
    """Card number for an ALSA card id (`ArrayUAC10`) or number; None when absent."""
    if card.isdigit():
        return int(card)
    link = proc_asound / card
    if link.is_symlink() or link.is_dir():
        match = re.search(r"card(\d+)$", str(link.resolve()))
        if match:
            return int(match.group(1))
    return None


def resolve_device(
    devices: list[DeviceInfo], spec: str, *, direction: str, channels: int, proc_asound: Path = Path("/proc/asound")
) -> DeviceInfo:
    """The device `spec` names, able to do `channels` in `direction` (input/output).

    `spec` may be an index, an exact PortAudio name, an ALSA hardware name
    (`hw:1,0`, `plughw:CARD=ArrayUAC10,DEV=0`), or a unique case-insensitive substring.
    """
    def capable(d: DeviceInfo) -> bool:
        have = d.max_input_channels if direction == "input" else d.max_output_channels
        return have >= channels

    candidates = [d for d in devices if capable(d)]
    listing = "; ".join(f"{d.index}: {d.name}" for d in candidates) or "none"
    fix = f"set audio.{'capture' if direction == 'input' else 'playback'}_device to one of: {listing}"

    if spec.isdigit():
        match = [d for d in candidates if d.index == int(spec)]
    else:
        match = [d for d in candidates if d.name == spec]
        hw = _ALSA_HW.match(spec)
        if not match and hw:
            number = alsa_card_number(hw["card"], proc_asound)
            if number is None:
                raise AudioDeviceError("device_not_found", f"ALSA card {hw['card']!r} is not present (is it plugged in? see `aplay -l`); {fix}")
            # PortAudio names hardware devices "<card>: <pcm> (hw:N,D)", or "(plughw:N,D)"
            # when PA_ALSA_PLUGHW=1 is set, which the PyAudio backend does for plughw specs.
            suffixes = (f"(hw:{number},{hw['dev'] or 0})", f"(plughw:{number},{hw['dev'] or 0})")
            match = [d for d in candidates if d.name.endswith(suffixes)]
        if not match:
            match = [d for d in candidates if spec.lower() in d.name.lower()]
    if len(match) == 1:
        return match[0]
    if not match:
        raise AudioDeviceError("device_not_found", f"no {direction} device with {channels} channel(s) matches {spec!r}; {fix}")
    names = ", ".join(repr(d.name) for d in match)
    raise AudioDeviceError("device_ambiguous", f"{spec!r} matches several {direction} devices ({names}); use a longer name or an index")
