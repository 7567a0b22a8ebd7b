"""What `ops deploy --target local` prepares before Ray is touched: the API key file, the encodings check and
the Serve config it submits. No serving stack needed."""

from __future__ import annotations

import stat

import pytest

from ops.errors import OpsError
from ops.spec import resolve
from ops.targets import local


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_OSS_OPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_key_file_is_private_and_reused(home):
    path, created = local.ensure_key_file()
    assert created and path == home / "api_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert len(key) >= 40
    path.chmod(0o644)
    again, created = local.ensure_key_file()
    assert not created and again.read_text().strip() == key
    assert stat.S_IMODE(again.stat().st_mode) == 0o600


def test_encodings_from_env_are_verified(home, monkeypatch, encodings_dir):
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(encodings_dir))
    assert local.ensure_encodings() == (encodings_dir, False)


def test_missing_encodings_name_the_fetch_command(home, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(empty))
    with pytest.raises(OpsError) as e:
        local.ensure_encodings()
    assert "ops encodings fetch" in e.value.fix and str(empty) in e.value.fix


def test_corrupt_encoding_is_refused(home, monkeypatch, tmp_path, encodings_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "o200k_base.tiktoken").write_bytes(b"not the vocab")
    (bad / "cl100k_base.tiktoken").write_bytes((encodings_dir / "cl100k_base.tiktoken").read_bytes())
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(bad))
    with pytest.raises(OpsError, match="SHA-256"):
        local.ensure_encodings()


def test_serve_config_is_loopback_and_carries_the_key_file_not_the_key(home, encodings_dir):
    key_path, _ = local.ensure_key_file()
    spec = local.local_spec(resolve(preset="tiny").spec, key_path)
    config = local.serve_config(spec, "/models/tiny", encodings_dir)
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000}
    (application,) = config["applications"]
    assert application["import_path"] == "app.serve_gpt_oss:build_app"
    assert application["args"]["auth"]["api_key_file"] == str(key_path)
    assert key_path.read_text().strip() not in str(config)
    (llm,) = application["args"]["llm_configs"]
    assert llm["runtime_env"]["env_vars"]["TIKTOKEN_ENCODINGS_BASE"] == str(encodings_dir)
    assert llm["accelerator_config"] == {"kind": "cpu"}

