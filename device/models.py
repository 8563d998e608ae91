"""Model files: found through models/manifest.toml and checked against its sha256."""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import ModelError

REPO_DIR = Path(__file__).resolve().parent.parent  # the checkout setup.sh installed from
# VOICE_DEVICE_MODELS points at another models/ folder; set but empty counts as unset (an
# EnvironmentFile line "VOICE_DEVICE_MODELS=" must not mean the working directory).
MODELS_DIR = Path(os.environ.get("VOICE_DEVICE_MODELS") or REPO_DIR / "models")


@dataclass(frozen=True)
class ModelEntry:
    """One model as the manifest describes it."""

    name: str
    path: Path
    sha256: str
    source: str
    license: str


def manifest(models_dir: Path = MODELS_DIR) -> dict[str, ModelEntry]:
    """All entries of models/manifest.toml."""
    manifest_path = models_dir / "manifest.toml"
    try:
        data = tomllib.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ModelError(
            "manifest_missing",
            f"{manifest_path} not found; set VOICE_DEVICE_MODELS to the repository's models/ folder",
        ) from None
    return {
        name: ModelEntry(name, models_dir / e["path"], e["sha256"], e["source"], e["license"])
        for name, e in data.get("models", {}).items()
    }


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def verified_path(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Path of model `name` after checking it exists and matches its sha256."""
    entries = manifest(models_dir)
    if name not in entries:
        raise ModelError("model_unknown", f"no model {name!r} in {models_dir / 'manifest.toml'}")
    entry = entries[name]
    if not entry.path.is_file():
        raise ModelError("model_missing", f"{entry.path} is missing; restore it with git checkout -- {entry.path}")
    actual = sha256_of(entry.path)
    if actual != entry.sha256:
        raise ModelError(
            "model_checksum",
            f"{entry.path} has sha256 {actual}, the manifest says {entry.sha256}; "
            "the file is damaged or was replaced (git checkout -- the file, or update the manifest "
            "with its source and license)",
        )
    return entry.path
