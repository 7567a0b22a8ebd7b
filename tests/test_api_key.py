"""One API key lookup for every verb and target (ops.api_key): the order it searches, the key file it keeps,
and a stack's SSM parameter (moto's SSM, with its real errors)."""

from __future__ import annotations

import stat

import pytest

from ops import api_key
from ops.errors import OpsError
from ops.spec import resolve


def _spec(**auth):
    return resolve(preset="tiny", flags={"auth": auth} if auth else {}).spec


def test_the_environment_wins_then_the_specs_file_then_the_targets(tmp_path, monkeypatch):
    spec_file, target_file = tmp_path / "spec.key", tmp_path / "target.key"
    spec_file.write_text("sk-from-spec\n")
    target_file.write_text("sk-from-target\n")
    spec = _spec(api_key_file=str(spec_file))
    monkeypatch.setenv(spec.auth.api_key_env, " sk-one , sk-two")
    assert api_key.find(spec, target_file) == ("sk-one", f"${spec.auth.api_key_env}")
    monkeypatch.delenv(spec.auth.api_key_env)
    assert api_key.find(spec, target_file) == ("sk-from-spec", str(spec_file))
    assert api_key.find(_spec(), target_file) == ("sk-from-target", str(target_file))
    assert api_key.find(_spec(), tmp_path / "missing") == (None, "")


def test_the_targets_key_file_is_generated_once_and_private(tmp_path):
    path, created = api_key.ensure_file(tmp_path / "keys" / "x.key")
    again, created_again = api_key.ensure_file(path)
    assert created and not created_again and again == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("sk-gpt-oss-")


@pytest.fixture
def ssm(monkeypatch):
    from moto import mock_aws

    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        yield boto3.client("ssm", region_name="us-east-1")


def test_a_stacks_key_comes_from_its_secure_string(ssm):
    ssm.put_parameter(Name="/gpt-oss-ops/dev/api-key", Type="SecureString", Value="sk-stack-key\n")
    assert api_key.from_ssm("/gpt-oss-ops/dev/api-key", "us-east-1") == "sk-stack-key"


def test_a_missing_parameter_says_how_to_create_it(ssm):
    with pytest.raises(OpsError) as e:
        api_key.from_ssm("/gpt-oss-ops/dev/api-key", "us-east-1")
    assert "does not exist" in e.value.message
    assert "aws ssm put-parameter --region us-east-1 --type SecureString --name /gpt-oss-ops/dev/api-key" in e.value.fix
