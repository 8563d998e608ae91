"""The systemd unit passes systemd's own checks (paths pointed at this checkout)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies(tmp_path):
    unit = (REPO / "systemd" / "voice-device.service").read_text().replace("/opt/voice-device", str(REPO))
    path = tmp_path / "voice-device.service"
    path.write_text(unit)
    assert (REPO / ".venv" / "bin" / "voice-device").exists()
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    problems = [line for line in proc.stderr.splitlines() if "voice-device.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
