"""WAV reading, the model manifest and the config file: clear errors for bad input."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.audio.wav import read_mono, read_wav, write_wav
from device.config import Config, config_from_dict, example_toml, load_config, with_overrides
from device.errors import AudioInputError, ConfigError, ModelError
from device.models import manifest, sha256_of, verified_path

REPO = Path(__file__).resolve().parent.parent


def _wav(path, tag, bits, channels, rate, payload):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
                     + fmt + b"data" + struct.pack("<I", len(payload)) + payload)


def test_reads_pcm16_float_24bit_and_stereo(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 0.25], dtype=np.float32)
    write_wav(tmp_path / "a.wav", x, 8000)
    np.testing.assert_allclose(read_wav(tmp_path / "a.wav").samples[:, 0], x, atol=1 / 32767)
    _wav(tmp_path / "f.wav", 3, 32, 2, 44100, np.stack([x, -x], 1).astype("<f4").tobytes())
    audio = read_wav(tmp_path / "f.wav")
    assert audio.sample_rate_hz == 44100 and audio.samples.shape == (4, 2)
    assert not audio.mono().any()  # L and -R cancel
    ints = (x * 8388607).astype(np.int32)
    payload = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    _wav(tmp_path / "p24.wav", 1, 24, 1, 16000, payload)
    np.testing.assert_allclose(read_wav(tmp_path / "p24.wav").samples[:, 0], x, atol=1e-6)
    assert len(read_mono(tmp_path / "f.wav", 16000)) == round(4 * 16000 / 44100)


@pytest.mark.parametrize("content,code", [
    (b"", "audio_not_wav"),
    (b"ID3\x04 this is an mp3", "audio_not_wav"),
    (b"RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00", "audio_bad_header"),
])
def test_unreadable_audio_names_the_problem(tmp_path, content, code):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioInputError) as err:
        read_wav(path)
    assert err.value.code == code and str(path) in str(err.value)
    with pytest.raises(AudioInputError) as missing:
        read_wav(tmp_path / "nope.wav")
    assert missing.value.code == "audio_missing"


def test_unsupported_sample_format(tmp_path):
    _wav(tmp_path / "alaw.wav", 6, 8, 1, 8000, b"\x00" * 8)
    with pytest.raises(AudioInputError, match="sox"):
        read_wav(tmp_path / "alaw.wav")


def test_manifest_entries_exist_and_match():
    entries = manifest()
    assert "silero_vad" in entries
    for entry in entries.values():
        assert entry.path.is_file(), entry.path
        assert sha256_of(entry.path) == entry.sha256
        assert entry.license and entry.source


@pytest.mark.parametrize("value,expected", [("", REPO / "models"), ("/srv/models", Path("/srv/models"))])
def test_models_folder_from_the_environment(value, expected):
    # An EnvironmentFile line "VOICE_DEVICE_MODELS=" (empty) means the default, not the working directory.
    code = "from device.models import MODELS_DIR; print(MODELS_DIR)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "VOICE_DEVICE_MODELS": value},
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()) == expected


def test_damaged_model_is_refused(tmp_path):
    (tmp_path / "vad").mkdir()
    (tmp_path / "vad" / "m.onnx").write_bytes(b"not the model")
    (tmp_path / "manifest.toml").write_text(
        '[models.m]\npath = "vad/m.onnx"\nsha256 = "00"\nsource = "x"\nlicense = "MIT"\n')
    with pytest.raises(ModelError) as err:
        verified_path("m", tmp_path)
    assert err.value.code == "model_checksum"


def test_config_defaults_and_example_file_load():
    assert load_config(None) == Config()
    # The documented example lists every key with its default: it must stay in step.
    assert (REPO / "config.example.toml").read_text() == example_toml()
    assert load_config(REPO / "config.example.toml") == Config()


def test_config_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[bargein]\nfade_msec = 80\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "bargein.fade_msec" in str(err.value) and "bargein.fade_ms" in str(err.value)


@pytest.mark.parametrize("data,needle", [
    ({"bargein": {"fade_ms": "eighty"}}, "bargein.fade_ms must be float"),
    ({"bargein": {"fade_ms": 300}}, "bargein.fade_ms"),
    ({"audio": {"capture_channels": 2, "capture_channel": 3}}, "audio.capture_channel"),
    ({"audio": {"playback_block_ms": 40}}, "audio.playback_block_ms"),
    ({"telemetry": {"exporter": "jaeger"}}, "telemetry.exporter"),
    ({"vad": 3}, "must be a table"),
])
def test_config_bad_values_are_named(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert needle in str(err.value)


def test_config_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[audio\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_overrides_keep_other_values():
    config = with_overrides(Config(), simulation={"room": "none"})
    assert config.simulation.room == "none" and config.bargein == Config().bargein
