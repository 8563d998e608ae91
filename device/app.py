"""Putting the device together: engines from config, attached to a VoiceDevice."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .assistant import Assistant
from .config import Config
from .core import VoiceDevice
from .llm import ChatModel, OpenAIChat
from .offline import OfflineResponder
from .stt import Recognizer, load_recognizer
from .tts import Synthesizer, load_synthesizer

_LOGGER = logging.getLogger(__name__)


@dataclass
class Engines:
    """The loaded STT, LLM and TTS (load once, use for many devices/replays)."""

    recognizer: Recognizer
    llm: ChatModel
    synthesizer: Synthesizer


def load_llm(config: Config) -> ChatModel:
    """The configured endpoint, or the offline responder when none is set."""
    if not config.llm.base_url:
        _LOGGER.info("Language model: offline responder (no llm.base_url configured)")
        return OfflineResponder()
    llm = OpenAIChat(config.llm)
    _LOGGER.info("Language model: %s (key from $%s)", llm.name, config.llm.api_key_env)
    return llm


def load_engines(config: Config) -> Engines:
    """Load every engine the config asks for (a few seconds, once)."""
    return Engines(load_recognizer(config.stt), load_llm(config), load_synthesizer(config.tts))


def attach(device: VoiceDevice, engines: Engines) -> VoiceDevice:
    """Give `device` its recognizer and the LLM + TTS assistant."""
    device.recognizer = engines.recognizer
    device.responder = Assistant(engines.llm, engines.synthesizer, run_tts=device.run_tts,
                                 on_event=device.emit, working=device.working)
    return device
