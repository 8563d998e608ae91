"""setup.sh's Vosk download on a Pi: installed only when the archive matches its sha256."""

import hashlib
import http.server
import importlib.util
import io
import threading
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("fetch_vosk", REPO / "models" / "fetch_vosk.py")
fetch_vosk = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch_vosk)


@pytest.fixture
def served():
    """A loopback HTTP server for one file's bytes; yields (set_bytes, url)."""
    content = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(content["data"])

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield content, f"http://127.0.0.1:{server.server_port}/model.zip"
    server.shutdown()


def model_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("vosk-model-small-en-us-0.15/am/final.mdl", b"acoustic model")
        zf.writestr("vosk-model-small-en-us-0.15/conf/model.conf", b"conf")
    return buf.getvalue()


def manifest(tmp_path, url, sha256):
    (tmp_path / "manifest.toml").write_text(
        f'[downloads.vosk_small_en]\nurl = "{url}"\nsha256 = "{sha256}"\n'
        'dest = "vosk-model-small-en-us-0.15"\nlicense = "Apache-2.0"\nsource = "test"\n')


def test_installs_when_the_checksum_matches(tmp_path, served):
    content, url = served
    content["data"] = model_zip()
    manifest(tmp_path, url, hashlib.sha256(content["data"]).hexdigest())
    assert fetch_vosk.main(tmp_path) == 0
    assert (tmp_path / "vosk-model-small-en-us-0.15" / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert fetch_vosk.main(tmp_path) == 0  # already there: nothing to do


def test_refuses_a_tampered_archive_and_leaves_nothing(tmp_path, served, capsys):
    content, url = served
    content["data"] = model_zip()
    manifest(tmp_path, url, hashlib.sha256(b"the real one").hexdigest())
    assert fetch_vosk.main(tmp_path) == 1
    assert "expected" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.toml"]


def test_repository_manifest_pins_the_published_archive():
    import tomllib

    entry = tomllib.loads((REPO / "models" / "manifest.toml").read_text())["downloads"]["vosk_small_en"]
    assert entry["url"].endswith("vosk-model-small-en-us-0.15.zip") and len(entry["sha256"]) == 64
