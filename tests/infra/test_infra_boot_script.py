"""The boot script's encodings step, run for real (bash, curl, sha256sum) against a local mirror: verified
files land in place; a tampered file stops the boot and leaves nothing behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra import userdata
from ops.spec import resolve


def _env_file(tmp_path: Path, dest: Path, url: str) -> Path:
    spec = resolve(preset="gpt-oss-20b").spec
    env = userdata.boot_env(spec, userdata.BootContext("worker", "ci", "img:1", "", "/a", "/h", "/g", "10.42.0.9"))
    f = tmp_path / "boot.env"
    # The node's paths, pointed at this test's directories.
    f.write_text(env + f"ENCODINGS_DIR='{dest}'\nENCODINGS_URL='{url}'\n")
    return f


def _fetch(env: Path) -> subprocess.CompletedProcess:
    assert shutil.which("curl") and shutil.which("sha256sum"), "curl/sha256sum missing: run scripts/system-deps.sh"
    script = 'source "$1"; source "$2"; fetch_encodings'
    return subprocess.run(["bash", "-c", script, "_", str(userdata.BOOT_SCRIPT), str(env)], capture_output=True,
                          text=True, timeout=60)


def test_verified_encodings_land_in_place(encodings_dir, tmp_path):
    dest = tmp_path / "enc"
    res = _fetch(_env_file(tmp_path, dest, encodings_dir.as_uri()))
    assert res.returncode == 0, res.stderr
    for name in userdata.ENCODINGS_SHA256:
        assert (dest / name).read_bytes() == (encodings_dir / name).read_bytes()
    assert not list(dest.glob("*.part"))
    # Already there and verified: nothing is fetched again (an unreachable mirror does not matter).
    res = _fetch(_env_file(tmp_path, dest, (tmp_path / "nowhere").as_uri()))
    assert res.returncode == 0, res.stderr


def test_tampered_encoding_stops_the_boot(encodings_dir, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in userdata.ENCODINGS_SHA256:
        shutil.copy(encodings_dir / name, mirror / name)
    with (mirror / "o200k_base.tiktoken").open("ab") as f:
        f.write(b"tampered\n")
    dest = tmp_path / "enc"
    res = _fetch(_env_file(tmp_path, dest, mirror.as_uri()))
    assert res.returncode != 0
    assert "o200k_base.tiktoken does not match its pinned SHA-256" in res.stderr
    assert not (dest / "o200k_base.tiktoken").exists() and not list(dest.glob("*.part"))


def test_sourcing_the_script_runs_nothing(tmp_path):
    res = subprocess.run(["bash", "-c", 'source "$1"; declare -F | wc -l', "_", str(userdata.BOOT_SCRIPT)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and int(res.stdout) >= 8 and res.stderr == ""
