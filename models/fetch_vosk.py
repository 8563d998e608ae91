"""Fetch the small English Vosk model into models/ (used by setup.sh on a Raspberry Pi).

Standard library only. The archive is checked against the sha256 pinned in
models/manifest.toml ([downloads.vosk_small_en]) before anything is unpacked; a
mismatch or no network leaves nothing behind, and the device then uses Whisper.
Exit status: 0 installed or already there, 1 not installed (the reason is printed).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

MODELS = Path(__file__).resolve().parent


def main(models: Path = MODELS) -> int:
    """Fetch into `models` (the folder holding manifest.toml)."""
    entry = tomllib.loads((models / "manifest.toml").read_text())["downloads"]["vosk_small_en"]
    dest = models / entry["dest"]
    if (dest / "am").is_dir():
        print(f"fetch_vosk: {dest} is already there")
        return 0
    with tempfile.TemporaryDirectory(dir=models) as tmp:
        archive = Path(tmp) / "model.zip"
        try:
            with urllib.request.urlopen(entry["url"], timeout=60) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:
            print(f"fetch_vosk: cannot download {entry['url']} ({err}); the device will use Whisper")
            return 1
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            print(f"fetch_vosk: {entry['url']} has sha256 {digest}, expected {entry['sha256']}; not installed")
            return 1
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        shutil.move(str(Path(tmp) / entry["dest"]), dest)
    print(f"fetch_vosk: installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
