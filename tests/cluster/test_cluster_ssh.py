"""The SSH layer against real sshd hosts: strict host keys, first-contact acceptance, and a connection cut
in the middle of the bundle upload (clear error; a re-run converges and then uploads nothing)."""

from __future__ import annotations

import sys

import pytest

from ops.errors import OpsError
from ops.remote import bundle, hosts, settings
from ops.remote.connection import fanout, open_nodes

pytestmark = pytest.mark.cluster


def _nodes(c, **over):
    opts = dict(outputs_file=str(c.outputs_file), identity_file=str(c.key), known_hosts=str(c.known_hosts),
                user="root", remote_dir=str(c.root / "remote"), retries=1, backoff_s=0.2,
                remote_python=sys.executable)
    s = settings.load(**{**opts, **over})
    return s, open_nodes(hosts.resolve(s), s)


def test_unknown_host_key_is_refused_then_accepted_on_first_contact(one_host, tmp_path):
    empty = tmp_path / "known_hosts"
    s, nodes = _nodes(one_host, known_hosts=str(empty))
    try:
        with pytest.raises(OpsError) as e:
            fanout(nodes.all, s, ["true"])
        assert "not in" in e.value.message and "--accept-new-host-keys" in e.value.fix
    finally:
        nodes.close()
    s, nodes = _nodes(one_host, known_hosts=str(empty), accept_new_host_keys=True)
    try:
        r = fanout(nodes.all, s, ["echo", "a b;c"])  # argument lists: no shell interpretation
        assert r[one_host.head.addr].stdout.strip() == "a b;c"
    finally:
        nodes.close()
    assert one_host.head.host_pub[1] in empty.read_text()
    s, nodes = _nodes(one_host, known_hosts=str(empty))  # now known: strict mode connects
    try:
        fanout(nodes.all, s, ["true"])
    finally:
        nodes.close()


def test_changed_host_key_is_refused_even_with_accept_new(one_host, tmp_path):
    other = tmp_path / "known_hosts"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    kind, blob = (tmp_path / "k.pub").read_text().split()[:2]
    other.write_text(f"{one_host.head.addr} {kind} {blob}\n")
    s, nodes = _nodes(one_host, known_hosts=str(other), accept_new_host_keys=True)
    try:
        with pytest.raises(OpsError) as e:
            fanout(nodes.all, s, ["true"])
        assert "changed" in e.value.message
    finally:
        nodes.close()


def test_dropped_connection_mid_upload_then_rerun_converges(one_host, monkeypatch):
    s, nodes = _nodes(one_host)
    b = bundle.build()
    assert b.size > 3 * 32768 // 2, "the bundle should span several SFTP chunks"
    cut = []

    def drop_after_first_chunk(host, sent, total):
        if not cut and sent < total:
            cut.append(sent)
            one_host.kill_sshd(one_host.head)

    monkeypatch.setattr(bundle, "_after_chunk", drop_after_first_chunk)
    try:
        with pytest.raises(OpsError) as e:
            bundle.sync(nodes.all, s, b)
        assert cut, "the connection was cut during the upload"
        assert "lost the SSH connection" in e.value.message and "re-run" in e.value.fix
    finally:
        nodes.close()
    # Nothing half-installed: the node still has no bundle.
    assert not (one_host.root / "remote" / "bundles" / b.sha256 / ".complete").exists()

    one_host.start_sshd(one_host.head)
    monkeypatch.setattr(bundle, "_after_chunk", lambda *a: None)
    s, nodes = _nodes(one_host)
    try:
        sent, same = bundle.sync(nodes.all, s, b)
        assert sent == [one_host.head.addr] and same == []
        sent, same = bundle.sync(nodes.all, s, b)
        assert sent == [] and same == [one_host.head.addr]
    finally:
        nodes.close()
    installed = one_host.root / "remote" / "bundles" / b.sha256
    assert (installed / ".complete").is_file() and (installed / "ops" / "targets" / "cluster.py").is_file()
    assert not list((one_host.root / "remote" / "uploads").iterdir())


def test_head_through_a_bastion(two_hosts):
    """via=bastion: the head is reached through the jump host (Fabric gateway); without it, no route."""
    head, jump = two_hosts.hosts
    two_hosts.outputs_file.write_text('{"head": "%s", "workers": []}' % head.addr)
    s, nodes = _nodes(two_hosts, via="bastion", bastion=f"root@{jump.addr}")
    try:
        r = fanout(nodes.all, s, ["ip", "-4", "-o", "addr", "show"])
        assert head.addr in r[head.addr].stdout and jump.addr not in r[head.addr].stdout
    finally:
        nodes.close()
    two_hosts.kill_sshd(jump)
    s, nodes = _nodes(two_hosts, via="bastion", bastion=f"root@{jump.addr}")
    try:
        with pytest.raises(OpsError) as e:
            fanout(nodes.all, s, ["true"])
        assert "re-run" in e.value.fix
    finally:
        nodes.close()


def test_missing_stack_outputs_is_a_clear_error(tmp_path):
    with pytest.raises(OpsError) as e:
        hosts.resolve(settings.load(outputs_file=str(tmp_path / "nope.json")))
    assert "pulumi stack output --json" in e.value.fix
    (tmp_path / "o.json").write_text('{"region": "us-east-1"}')
    with pytest.raises(OpsError) as e:
        hosts.resolve(settings.load(outputs_file=str(tmp_path / "o.json")))
    assert "head" in e.value.message


def test_pulumi_style_outputs_map_to_hosts():
    out = {"head_public_ip": "203.0.113.10", "head_private_ip": "10.0.0.5", "endpoint": "http://203.0.113.10:8000",
           "worker_asg_name": None, "region": "us-east-1", "workers": ["10.0.1.7", "10.0.1.8"]}
    h = hosts.from_outputs(out, settings.load())
    assert (h.head, h.head_private, h.workers, h.region) == ("203.0.113.10", "10.0.0.5", ["10.0.1.7", "10.0.1.8"],
                                                            "us-east-1")
    via_bastion = hosts.from_outputs(out, settings.load(via="bastion", bastion="ops@198.51.100.1"))
    assert via_bastion.head == "10.0.0.5"


def test_settings_from_environment_and_options(monkeypatch):
    monkeypatch.setenv("GPT_OSS_HEAD_NUM_CPUS", "8")
    monkeypatch.setenv("GPT_OSS_ACCEPT_NEW_HOST_KEYS", "yes")
    monkeypatch.setenv("GPT_OSS_REMOTE_ENV", '{"A": 1}')
    s = settings.load(stack="dev", head_num_cpus=None, destroy=True)  # None and foreign options are ignored
    assert (s.stack, s.head_num_cpus, s.accept_new_host_keys, s.remote_env) == ("dev", 8, True, {"A": "1"})
    assert settings.load(user="root").resolved_remote_dir == "/root/.gpt-oss-ops"
    monkeypatch.setenv("GPT_OSS_SSH_RETRIES", "many")
    with pytest.raises(OpsError) as e:
        settings.load()
    assert "GPT_OSS_SSH_RETRIES" in e.value.message
    monkeypatch.delenv("GPT_OSS_SSH_RETRIES")
    with pytest.raises(OpsError) as e:
        settings.load(via="bastion")
    assert "GPT_OSS_BASTION" in e.value.fix


def test_terminate_destroy_without_pulumi_cli_says_what_to_run(monkeypatch, tmp_path):
    from ops.targets import cluster

    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` on PATH
    with pytest.raises(OpsError) as e:
        cluster._destroy("dev")
    assert "Pulumi CLI is not installed" in e.value.message
    assert "pulumi destroy --yes --stack dev" in e.value.fix
    with pytest.raises(OpsError) as e:
        cluster._destroy(None)
    assert "--stack" in e.value.fix
