"""Typed errors, one per stage, each with a stable code and a message a person can act on."""

from __future__ import annotations


class DeviceError(Exception):
    """Base class: `code` is stable for scripts, the message says what to do."""

    stage = "device"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.stage}/{self.code}] {self.message}"


class ConfigError(DeviceError):
    """The configuration file or a command-line value is wrong."""

    stage = "config"


class AudioInputError(DeviceError):
    """An audio file cannot be read or understood."""

    stage = "audio-file"


class AudioDeviceError(DeviceError):
    """A capture or playback device cannot be found or opened."""

    stage = "audio-device"


class ModelError(DeviceError):
    """A model file is missing, damaged, or does not match its manifest."""

    stage = "model"
