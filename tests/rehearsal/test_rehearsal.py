"""The production path, rehearsed: `pulumi up` (the real program, moto behind its mocks), nodes booting from the
user-data it rendered (cloud-init, the systemd unit, Docker pulling the serving image, the weights from the
bucket's mirror, Ray joining), then `ops deploy --target cluster --stack` serving the tiny gpt-oss from those
nodes and `ops smoke` passing; then the faults production meets.

One stack for the module, tests in file order. Run alone with `pytest -m rehearsal`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import provision
import pytest
from provision import boot_all, config, instances, nodes_by_role, refresh_firewalls, up
from region import REGION, write_outputs

from tests.support import run_ops

pytestmark = [pytest.mark.rehearsal, pytest.mark.cluster, pytest.mark.stack, pytest.mark.timeout(3000)]

WORKER_RAY_PORTS = (6380, 6381, 6382, 6383, 8080, 52365)


@pytest.fixture(scope="module")
def stack(cloud, tiny_model_dir, encodings_dir):
    """`pulumi up` with moto behind the mocks, the weights mirror filled, every instance booted."""
    st = up(cloud, tiny_model_dir, encodings_dir)
    hv = provision.nodes(cloud)
    try:
        boot_all(cloud, st, hv)
        yield st, hv
    finally:
        hv.close()


def test_nodes_boot_from_the_rendered_user_data(cloud, stack):
    st, hv = stack
    refresh_firewalls(st, hv)
    head, workers = nodes_by_role(hv)
    assert len(workers) == 1
    for node in hv.nodes.values():
        status = hv.wait_boot(node, timeout=1200)
        assert status["state"] == "ready" and status["instance_id"] == node.instance_id
    for node in hv.nodes.values():
        # cloud-init ran exactly the user-data the program rendered for this instance's launch template
        applied = node.read("/var/lib/cloud/instance/user-data.txt")
        assert applied and applied.startswith("#cloud-config") and "gpt-oss-boot.service" in applied
        # systemd runs the boot (and would retry it); the unit came from the user-data's write_files
        assert node.exec("systemctl", "is-active", "gpt-oss-boot.service").stdout.strip() == "active"
        # the container runs as the image's user (uid 1000) on host directories that user owns
        assert node.exec("docker", "exec", "ray", "id", "-u").stdout.strip() == "1000"
        owner = node.exec("stat", "-c", "%u", "/var/lib/gpt-oss/ray").stdout.strip()
        assert owner == "1000"
        assert node.exec("test", "-f", "/var/lib/gpt-oss/ready").returncode == 0
    worker = workers[0]
    listing = worker.exec("ls", "-ln", "/opt/models/tiny").stdout
    assert "config.json" in listing and " 1000 " in listing  # the weights, once, owned by the image's user
    assert worker.exec("test", "-f", "/opt/models/tiny/.complete").returncode == 0


@pytest.fixture(scope="module")
def common(cloud, stack, tmp_path_factory) -> list[str]:
    """The options every `ops` call of the rehearsal passes: the stack, its outputs, the operator's key."""
    st, _ = stack
    return provision.ops_options(cloud, st, tmp_path_factory.mktemp("ssh") / "known_hosts")


def test_deploy_serves_from_the_booted_nodes(cloud, stack, common):
    st, hv = stack
    proc = run_ops("deploy", "--preset", "tiny", "--set", "owner=rehearsal", *common, "--json", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-6000:]
    result = json.loads(proc.stdout)
    head, _ = nodes_by_role(hv)
    assert result["endpoint"] == f"http://{head.public_address}:8000/v1"
    assert any("the app's code" in c and "s3://" in c for c in result["changed"]), result
    assert any("fetched by their boot" in u for u in result["unchanged"]), result
    # The key is the stack's SSM parameter, which each node's boot hands to its replicas: none is copied.
    assert result["api_key_hint"] == "SSM parameter /gpt-oss-ops/rehearsal/api-key", result
    assert not any("API key file" in c for c in result["changed"] + result["unchanged"]), result
    smoke = run_ops("smoke", "--preset", "tiny", *common, "--json")  # the key from SSM, as deploy found it
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-3000:]
    report = json.loads(smoke.stdout)
    assert report["ok"] and report["failed"] == 0, report


def _chat(address: str, timeout: float = 600) -> dict:
    """One chat completion through the head's endpoint (retried while the application settles)."""
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.post(f"http://{address}:8000/v1/chat/completions", timeout=120,
                           headers={"Authorization": "Bearer sk-rehearsal-key"},
                           json={"model": "my-gpt-oss", "max_tokens": 48,
                                 "messages": [{"role": "user", "content": "What's the weather in Tokyo?"}],
                                 "tools": [{"type": "function", "function": {
                                     "name": "get_weather", "description": "Get current weather in a given city",
                                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                    "required": ["city"]}}}]})
            if r.status_code == 200:
                return r.json()
            last = f"HTTP {r.status_code}: {r.text[:300]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(5)
    raise AssertionError(f"the endpoint on {address} did not answer within {timeout:.0f}s: {last}")


def _probe(netns: str, address: str, port: int) -> bool:
    """True when a TCP connection from the namespace to address:port is accepted."""
    code = (f"import socket,sys\ns=socket.socket(); s.settimeout(2)\n"
            f"sys.exit(0 if s.connect_ex(({address!r}, {port})) == 0 else 1)")
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code],
                          capture_output=True, timeout=30).returncode == 0


def test_the_model_calls_the_tool_from_the_booted_nodes(stack):
    _, hv = stack
    head, _ = nodes_by_role(hv)
    msg = _chat(head.public_address)["choices"][0]["message"]
    assert msg["tool_calls"] and msg["tool_calls"][0]["function"]["name"] == "get_weather"
    assert "Tokyo" in msg["tool_calls"][0]["function"]["arguments"]


def test_ray_is_reachable_only_inside_the_cluster_and_asks_for_its_token(cloud, stack):
    """From a namespace on the same bridge but in no security group and not on the allow-list, no Ray port of
    any node answers, and neither does the endpoint; from inside, the dashboard is on the head's loopback only
    and its Jobs API refuses a request without Ray's token."""
    _, hv = stack
    head, workers = nodes_by_role(hv)
    outsider = f"gos-{cloud.uid}-out"
    subprocess.run(["ip", "netns", "add", outsider], check=True)
    try:
        subprocess.run(["ip", "link", "add", f"gx{cloud.uid}", "type", "veth", "peer", "name", f"gy{cloud.uid}"],
                       check=True)
        subprocess.run(["ip", "link", "set", f"gy{cloud.uid}", "netns", outsider], check=True)
        subprocess.run(["ip", "link", "set", f"gx{cloud.uid}", "master", cloud.bridge, "up"], check=True)
        subprocess.run(["ip", "-n", outsider, "addr", "add", f"10.200.{cloud.block}.250/20", "dev", f"gy{cloud.uid}"],
                       check=True)
        subprocess.run(["ip", "-n", outsider, "link", "set", f"gy{cloud.uid}", "up"], check=True)
        for node in (head, *workers):
            ports = (6379, 10001, *WORKER_RAY_PORTS, 10002, 8000) if node is head else (*WORKER_RAY_PORTS, 10002)
            open_ports = [p for p in ports if _probe(outsider, node.address, p)]
            assert open_ports == [], (node.machine, open_ports)
        # The allow-listed operator (the bridge's gateway) reaches the endpoint, not Ray.
        assert socket.create_connection((head.public_address, 8000), timeout=5)
        with pytest.raises(OSError):
            socket.create_connection((head.public_address, 6379), timeout=3)
    finally:
        subprocess.run(["ip", "netns", "del", outsider], capture_output=True)
    listening = head.exec("ss", "-ltnH", "sport", "=", ":8265").stdout
    assert "127.0.0.1:8265" in listening and f"{head.address}:8265" not in listening and "*:8265" not in listening
    no_token = head.exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8265/api/jobs/")
    assert no_token.stdout == "401", no_token
    with_token = head.exec("docker", "exec", "ray", "sh", "-c",
                           'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $RAY_AUTH_TOKEN" '
                           "http://127.0.0.1:8265/api/jobs/")
    assert with_token.stdout == "200", with_token


def test_a_destroyed_worker_is_replaced_and_serves_without_a_redeploy(cloud, stack, common):
    st, hv = stack
    head, (old,) = nodes_by_role(hv)
    hv.destroy(old.instance_id)  # the instance dies (hardware, spot reclaim)
    asg = cloud.client("autoscaling")
    asg.terminate_instance_in_auto_scaling_group(InstanceId=old.instance_id, ShouldDecrementDesiredCapacity=False)
    (new,) = boot_all(cloud, st, hv)  # the group launched a replacement; EC2 boots it from the same user-data
    refresh_firewalls(st, hv)
    assert new.instance_id != old.instance_id and new.role == "worker"
    hv.wait_boot(new, timeout=1200)
    answer = _chat(head.public_address, timeout=900)  # Serve places the replica on the new node: no `ops deploy`
    assert answer["choices"][0]["message"]["tool_calls"]
    st_json = json.loads(run_ops("status", "--preset", "tiny", *common, "--json", timeout=300).stdout)
    assert st_json["running"] is True
    alive = {n["ip"] for n in st_json["nodes"] if n["state"] == "ALIVE"}
    assert new.address in alive and old.address not in alive
    boot = st_json["details"]["boot"]  # each node's own boot, as status.json reports it
    assert boot[new.address]["state"] == "ready" and {"image", "weights", "ray", "join"} <= set(
        boot[new.address]["seconds_by_step"]), boot


def test_a_restarted_head_container_converges_on_the_next_deploy(cloud, stack, common):
    _, hv = stack
    head, _ = nodes_by_role(hv)
    assert head.exec("docker", "restart", "ray", timeout=300).returncode == 0  # Ray's GCS starts empty
    proc = run_ops("deploy", "--preset", "tiny", "--set", "owner=rehearsal", *common, "--json", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-6000:]
    result = json.loads(proc.stdout)
    assert any(c.startswith("deployed Serve application") for c in result["changed"]), result
    assert _chat(head.public_address)["choices"]
    again = json.loads(run_ops("deploy", "--preset", "tiny", "--set", "owner=rehearsal", *common,
                           "--json").stdout)
    assert not any("Serve application" in c for c in again["changed"]), again


def test_an_unreachable_weights_mirror_leaves_the_node_visibly_unhealthy(cloud, stack):
    st, hv = stack
    bucket = st.outputs["weights_bucket"]
    s3 = cloud.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/tiny/")["Contents"]]
    for k in keys:  # the mirror goes away (a wrong prefix, a lifecycle rule, a deleted upload)
        s3.copy_object(Bucket=bucket, Key="stash/" + k, CopySource={"Bucket": bucket, "Key": k})
        s3.delete_object(Bucket=bucket, Key=k)
    try:
        _, (old,) = nodes_by_role(hv)
        hv.destroy(old.instance_id)
        cloud.client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=old.instance_id, ShouldDecrementDesiredCapacity=False)
        (new,) = boot_all(cloud, st, hv)
        refresh_firewalls(st, hv)
        status = hv.wait_boot(new, states=("gave-up", "ready"), timeout=1200)
        assert status["state"] == "gave-up" and status["step"] == "weights", status
        assert "no checkpoint at s3://" in status["reason"] and status["attempt"] == 3, status
        assert "no checkpoint at s3://" in (new.read("/var/lib/gpt-oss/boot.log") or "")
        journal = new.journal("gpt-oss-boot", 200)
        assert journal.count("gpt-oss-boot.service: Scheduled restart job") >= 2, journal[-3000:]
        health = cloud.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[new.instance_id])
        assert health["AutoScalingInstances"][0]["HealthStatus"].upper() == "UNHEALTHY", health
    finally:
        for k in keys:
            s3.copy_object(Bucket=bucket, Key=k, CopySource={"Bucket": bucket, "Key": "stash/" + k})


def test_bad_input_is_refused_before_any_node_is_touched(cloud, stack, common, tmp_path):
    import cloud as aws
    import pulumi

    st, _ = stack
    # A serving-image tag that does not exist: refused at render time, before any resource.
    with pytest.raises(pulumi.RunError) as e:
        aws.up(config(cloud, image=cloud.image.rsplit(":", 1)[0] + ":no-such-tag"), endpoint=cloud.moto.url,
               region=REGION, stack="rehearsal-bad", secret_keys=("apiKey", "rayToken"))
    assert "gpt-oss-ops:image" in str(e.value) and "does not exist" in str(e.value)
    assert cloud.client("ec2").describe_vpcs(Filters=[{"Name": "tag:stack", "Values": ["rehearsal-bad"]}])["Vpcs"] == []

    # Outputs that send the target to a head nobody answers on: whatever fails must fail before SSH.
    unreachable = {**st.output_json(), "head_private_ip": f"10.200.{cloud.block}.251",
                   "head_public_ip": f"10.200.{cloud.block}.251"}
    opts = [*common]
    opts[opts.index("--outputs") + 1] = str(write_outputs(tmp_path / "o.json", unreachable))
    # ... a model source the nodes' role cannot read
    proc = run_ops("deploy", "--preset", "tiny", "--set", "model_source=s3://someone-elses-bucket/tiny", *opts,
               timeout=300)
    assert proc.returncode == 2 and "outside the stack's bucket" in proc.stderr and "aws s3 sync" in proc.stderr
    # ... a stack whose outputs lack what the target needs
    partial = {k: v for k, v in unreachable.items() if k not in ("weights_bucket",)}
    partial["node_access"] = {k: v for k, v in partial["node_access"].items() if k != "state_dir"}
    opts[opts.index("--outputs") + 1] = str(write_outputs(tmp_path / "p.json", partial))
    proc = run_ops("deploy", "--preset", "tiny", *opts, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "weights_bucket" in proc.stderr and "node_access.state_dir" in proc.stderr and "pulumi up" in proc.stderr


def test_terminate_verify_then_nothing_is_left(cloud, stack, common):
    st, hv = stack
    proc = run_ops("terminate", "--preset", "tiny", *common, "--verify", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = json.loads(proc.stdout)["details"]["orphans"]
    assert before["clean"] is False
    assert before["nat_gateways"] and before["elastic_ips"] and before["auto_scaling_groups"]
    assert before["instances"] and before["buckets"] and before["log_groups"]
    hv.close()  # the instances go away ...
    deleted = st.mocks.destroy()  # ... with everything the program created (`pulumi destroy`)
    assert any(d.startswith("Group ") for d in deleted) and any(d.startswith("Bucket ") for d in deleted)
    for inst in instances(cloud, st):  # what the Auto Scaling group had launched
        cloud.client("ec2").terminate_instances(InstanceIds=[inst["InstanceId"]])
    proc = run_ops("terminate", "--preset", "tiny", *common, "--verify", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads(proc.stdout)["details"]["orphans"]
    assert after["clean"] is True, after
