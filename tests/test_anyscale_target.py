"""The Anyscale target against the Anyscale SDK's own fake control plane.

Everything above the SDK's client runs for real: rendering from the spec, validation with Anyscale's
ServiceConfig and Ray's ServeDeploySchema / LLMConfig, the SDK's ServiceSDK (rollout strategy, compute config,
working_dir packaging, status mapping). Only the HTTP client is the SDK's FakeAnyscaleClient, extended with the
lifecycle a real service goes through (ops.anyscale_client.FakeControlPlane). Tests assert on the service's
state as the control plane holds it and on what the user is told.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops.anyscale_client import fake_control_plane, redact, service_sdk
from ops.errors import OpsError
from ops.spec import SpecError, resolve
from ops.targets import anyscale as target

ROOT = Path(__file__).resolve().parents[1]
FAST = {"poll_interval_s": 0}


def _spec(**flags):
    return resolve(preset="gpt-oss-20b", flags={"target": "anyscale", **flags}).spec


@pytest.fixture
def plane():
    return fake_control_plane()


@pytest.fixture
def sdk(plane):
    return service_sdk(plane)


def _services(plane) -> dict:
    """The control plane's own record: service name -> state."""
    return {s.name: str(s.current_state) for s in plane._services.values()}


def test_deploy_renders_validates_and_reaches_running(sdk, plane, tmp_path, capfd):
    spec = _spec()
    result = target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)

    assert _services(plane) == {"deploy-gpt-oss": "RUNNING"}
    assert result.endpoint == "http://deploy-gpt-oss.fake.url/v1"  # query_url + /v1: the OpenAI base URL
    assert result.model_id == "my-gpt-oss"
    assert result.changed and "created" in result.changed[0] and not result.unchanged
    assert "anyscale service status -n deploy-gpt-oss" in result.api_key_hint

    # The files on disk are the ones sent, and the SDK's own model accepts them as written.
    from anyscale.service.models import ServiceConfig

    service = yaml.safe_load((tmp_path / "service.yaml").read_text())
    config = ServiceConfig(**service)
    assert config.name == "deploy-gpt-oss" and config.containerfile == str(tmp_path / "Dockerfile")
    assert config.query_auth_token_enabled is True
    assert service["applications"][0]["import_path"] == "app.serve_gpt_oss:build_app"
    llm = service["applications"][0]["args"]["llm_configs"][0]
    assert llm["accelerator_type"] == "L4" and llm["model_loading_config"]["model_source"] == "openai/gpt-oss-20b"
    assert "COPY " not in (tmp_path / "Dockerfile").read_text()  # Anyscale builds without a build context

    # The control plane got the rendered Serve application, and the version the target named.
    rolled = plane.rolled_out_model
    assert rolled.ray_serve_config["applications"][0]["import_path"] == "app.serve_gpt_oss:build_app"
    assert rolled.version == target.render_service(spec, check=False).version

    # The query token is never printed.
    out = capfd.readouterr()
    assert "fake-auth-token" not in out.out + out.err
    assert "fake-auth-token" not in str(result.to_dict())


def test_status_reports_endpoint_versions_and_token_only_when_asked(sdk, tmp_path):
    spec = _spec()
    target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)

    st = target.status(spec, sdk=sdk)
    assert st.running and st.app_status == "RUNNING" and st.target == "anyscale"
    assert st.endpoint == "http://deploy-gpt-oss.fake.url/v1"
    assert st.details["query_url"] == "http://deploy-gpt-oss.fake.url"
    assert st.details["config_matches_spec"] is True
    assert [v["state"] for v in st.details["versions"]] == ["RUNNING"]
    assert "query_auth_token" not in st.details and "fake-auth-token" not in str(st.to_dict())
    assert "Serve LLM Dashboard" in st.details["dashboard"]

    assert target.status(spec, sdk=sdk, show_token=True).details["query_auth_token"] == "fake-auth-token"

    # A spec that renders differently is reported as not matching what runs.
    assert target.status(_spec(max_model_len=16384), sdk=sdk).details["config_matches_spec"] is False


def test_status_of_missing_service_is_reported_not_raised(sdk):
    st = target.status(_spec(), sdk=sdk, name="never-deployed")
    assert not st.running and st.app_status == "NOT_FOUND" and st.endpoint is None


def test_deploy_twice_is_a_no_op_and_a_changed_spec_rolls_out(sdk, plane, tmp_path):
    spec = _spec()
    target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)
    first = target.status(spec, sdk=sdk).details["versions"][0]["name"]

    again = target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)
    assert again.changed == [] and again.unchanged and "running" in again.unchanged[0]
    assert plane.rollouts == 1  # the control plane saw no second rollout
    assert target.status(spec, sdk=sdk).details["versions"][0]["name"] == first

    bigger = _spec(max_model_len=16384, replicas={"min": 1, "max": 3})
    update = target.deploy(bigger, sdk=sdk, render_dir=tmp_path, **FAST)
    assert update.changed and "rolling update" in update.changed[0] and first in update.changed[0]
    st = target.status(bigger, sdk=sdk)
    assert st.running and st.details["versions"][0]["name"] != first and st.details["config_matches_spec"]
    assert plane.rollouts == 2
    llm = plane.rolled_out_model.ray_serve_config["applications"][0]["args"]["llm_configs"][0]
    assert llm["engine_kwargs"]["max_model_len"] == 16384
    assert llm["deployment_config"]["autoscaling_config"]["max_replicas"] == 3


def test_terminate_twice_succeeds(sdk, plane, tmp_path):
    spec = _spec()
    target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)

    first = target.terminate(spec, sdk=sdk, **FAST)
    assert first.stopped == ["anyscale service deploy-gpt-oss"] and not first.already_stopped
    assert _services(plane) == {"deploy-gpt-oss": "TERMINATED"}
    assert not target.status(spec, sdk=sdk).running

    second = target.terminate(spec, sdk=sdk, **FAST)
    assert second.stopped == [] and second.already_stopped == ["anyscale service deploy-gpt-oss"]

    # A name that never existed is also "nothing was running".
    none = target.terminate(spec, sdk=sdk, name="never-deployed", **FAST)
    assert none.stopped == [] and "no such service" in none.already_stopped[0]

    # Deploying after a terminate restarts the same service.
    again = target.deploy(spec, sdk=sdk, render_dir=tmp_path, **FAST)
    assert "restarted" in again.changed[0] and _services(plane) == {"deploy-gpt-oss": "RUNNING"}


def test_unhealthy_service_is_a_clear_error_with_the_backend_message(tmp_path):
    plane = fake_control_plane(fail_rollout="UNHEALTHY",
                               failure_message="Replica failed to start: CUDA out of memory.")
    with pytest.raises(OpsError) as e:
        target.deploy(_spec(), sdk=service_sdk(plane), render_dir=tmp_path, unhealthy_grace_s=0, **FAST)
    assert "UNHEALTHY" in e.value.message and "CUDA out of memory" in e.value.message
    assert "controller-logs -n deploy-gpt-oss" in e.value.fix and "ops terminate --target anyscale" in e.value.fix
    assert e.value.code == 1 and e.value.runbook


def test_system_failure_stops_the_wait_at_once(tmp_path):
    plane = fake_control_plane(fail_rollout="SYSTEM_FAILURE", failure_message="head node lost")
    with pytest.raises(OpsError, match="SYSTEM_FAILURE.*head node lost"):
        # A long grace for UNHEALTHY does not delay a SYSTEM_FAILURE.
        target.deploy(_spec(), sdk=service_sdk(plane), render_dir=tmp_path, unhealthy_grace_s=3600, **FAST)


def test_api_refusal_is_reported_with_the_server_text(tmp_path):
    # The real client turns a 4xx answer into ValueError(<server detail>); the fake raises the same shape.
    plane = fake_control_plane(reject_rollout="Instance type 'g6.xlarge' is not available in cloud 'prod'.")
    with pytest.raises(OpsError) as e:
        target.deploy(_spec(), sdk=service_sdk(plane), render_dir=tmp_path, **FAST)
    assert "refused to deploy" in e.value.message and "g6.xlarge" in e.value.message
    assert _services(plane) == {}


def test_wait_times_out_with_an_actionable_error(tmp_path):
    plane = fake_control_plane(never_ready=True)
    with pytest.raises(OpsError) as e:
        target.deploy(_spec(), sdk=service_sdk(plane), render_dir=tmp_path, timeout_s=0.2, poll_interval_s=0.02)
    assert "still STARTING after" in e.value.message
    assert "ops status --target anyscale" in e.value.fix and "ops terminate --target anyscale" in e.value.fix
    assert _services(plane) == {"deploy-gpt-oss": "STARTING"}  # it keeps going; the user was told how to stop it


def test_detach_returns_once_accepted(sdk, plane, tmp_path):
    result = target.deploy(_spec(), sdk=sdk, render_dir=tmp_path, detach=True, **FAST)
    assert result.endpoint == "http://deploy-gpt-oss.fake.url/v1"  # query_url + /v1: the OpenAI base URL
    st = target.wait(_spec(), 5, sdk=sdk, **FAST)
    assert st.running


def test_name_option_deploys_under_another_name(sdk, plane, tmp_path):
    target.deploy(_spec(), sdk=sdk, name="gpt-oss-staging", render_dir=tmp_path, **FAST)
    assert _services(plane) == {"gpt-oss-staging": "RUNNING"}
    assert target.status(_spec(), sdk=sdk, name="gpt-oss-staging").running
    assert target.terminate(_spec(), sdk=sdk, name="gpt-oss-staging", **FAST).stopped


def test_cpu_accelerator_is_refused_before_any_sdk_call(plane, tmp_path):
    # Resolving such a spec fails in the spec itself...
    with pytest.raises(SpecError) as e:
        _spec(accelerator="CPU", model="tiny")
    assert any(p.field == "accelerator" for p in e.value.problems)

    # ...and a spec resolved for another target is re-checked as an Anyscale deployment before rendering.
    local_spec = resolve(preset="tiny").spec
    assert local_spec.accelerator == "CPU"
    with pytest.raises(SpecError) as e:
        target.deploy(local_spec, sdk=service_sdk(plane), render_dir=tmp_path, **FAST)
    assert any(p.field == "accelerator" and "GPU" in p.fix for p in e.value.problems)
    assert _services(plane) == {} and plane.rolled_out_model is None
    assert not (tmp_path / "service.yaml").exists()


def test_bad_name_is_refused_before_any_sdk_call(plane, tmp_path):
    with pytest.raises(SpecError) as e:
        target.deploy(_spec(), sdk=service_sdk(plane), name="Not_A_Name", render_dir=tmp_path, **FAST)
    assert e.value.problems[0].field == "name"
    assert _services(plane) == {}


def test_open_endpoint_only_when_auth_is_disabled_on_purpose(sdk, plane, tmp_path):
    result = target.deploy(_spec(auth={"enabled": False}), sdk=sdk, render_dir=tmp_path, **FAST)
    assert plane.rolled_out_model.config.access.use_bearer_token is False
    assert "open to anyone" in result.api_key_hint


def test_redact_hides_bearer_tokens():
    line = 'curl -H "Authorization: Bearer s3cr3t-t0ken" http://svc/'
    assert redact(line) == 'curl -H "Authorization: Bearer <token>" http://svc/'


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYSCALE_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"),
               ANYSCALE_HOST="http://127.0.0.1:9")  # a closed port: nothing may leave this machine
    return env


def test_missing_credentials_say_how_to_log_in(tmp_path):
    # A fresh process: the SDK caches its authentication result for the life of a process.
    code = ("from ops.anyscale_client import service_sdk\nfrom ops.errors import OpsError\n"
            "try:\n    service_sdk()\nexcept OpsError as e:\n    print(e.code, e.message, e.fix, sep='|')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_offline_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    code_, message, fix = proc.stdout.strip().split("|")
    assert code_ == "3" and "Credentials not found" in message
    assert "anyscale login" in fix and "ANYSCALE_CLI_TOKEN" in fix


def test_cli_status_without_credentials_is_one_actionable_error(tmp_path):
    ops = Path(sys.executable).with_name("ops")
    proc = subprocess.run([str(ops), "status", "--target", "anyscale", "--preset", "gpt-oss-20b"], cwd=tmp_path,
                          env=_offline_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "cannot reach Anyscale" in proc.stderr and "anyscale login" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_deploy_refuses_cpu_on_anyscale(tmp_path):
    ops = Path(sys.executable).with_name("ops")
    proc = subprocess.run([str(ops), "deploy", "--target", "anyscale", "--preset", "tiny"], cwd=tmp_path,
                          env=_offline_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "accelerator" in proc.stderr and "GPU" in proc.stderr
    assert not (tmp_path / ".ops").exists()  # nothing rendered, nothing sent


def test_cli_deploy_status_terminate_through_the_fake_control_plane(tmp_path, monkeypatch):
    """The `ops` commands end to end, with only the SDK's client swapped for the fake (at the boundary)."""
    import json

    from typer.testing import CliRunner

    from ops.cli import app

    plane = fake_control_plane(steps_to_running=1, steps_to_terminated=0)  # no polling sleeps needed
    monkeypatch.setattr(target, "service_sdk", lambda *a, **k: service_sdk(plane))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["--target", "anyscale", "--preset", "gpt-oss-20b"]

    deployed = runner.invoke(app, ["deploy", *args, "--json"])
    assert deployed.exit_code == 0, deployed.output
    result = json.loads(deployed.stdout)
    assert result["endpoint"] == "http://deploy-gpt-oss.fake.url/v1" and result["changed"]
    assert (tmp_path / ".ops" / "anyscale" / "deploy-gpt-oss" / "service.yaml").is_file()
    assert "fake-auth-token" not in deployed.output

    status = runner.invoke(app, ["status", *args, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["app_status"] == "RUNNING"

    assert json.loads(runner.invoke(app, ["deploy", *args, "--json"]).stdout)["changed"] == []

    first = runner.invoke(app, ["terminate", *args])
    second = runner.invoke(app, ["terminate", *args])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "stopped" in first.output and "not running" in second.output
    assert _services(plane) == {"deploy-gpt-oss": "TERMINATED"}
    assert runner.invoke(app, ["status", *args]).exit_code == 1


def test_cli_target_options_reach_the_target(tmp_path, monkeypatch):
    """--name and --render-dir on the command line decide the service name and where its files go."""
    import json

    from typer.testing import CliRunner

    from ops.cli import app

    plane = fake_control_plane(steps_to_running=1, steps_to_terminated=0)
    monkeypatch.setattr(target, "service_sdk", lambda *a, **k: service_sdk(plane))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["--target", "anyscale", "--preset", "gpt-oss-20b", "--name", "team-a-gpt-oss"]
    deployed = runner.invoke(app, ["deploy", *args, "--render-dir", str(tmp_path / "out"), "--json"])
    assert deployed.exit_code == 0, deployed.output
    assert json.loads(deployed.stdout)["endpoint"] == "http://team-a-gpt-oss.fake.url/v1"
    assert (tmp_path / "out" / "service.yaml").is_file()
    assert json.loads(runner.invoke(app, ["status", *args, "--json"]).stdout)["app_status"] == "RUNNING"
    assert runner.invoke(app, ["terminate", *args]).exit_code == 0
    assert _services(plane) == {"team-a-gpt-oss": "TERMINATED"}
