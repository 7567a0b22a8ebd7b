"""The steps of a rehearsed `pulumi up`: the program's config for the rehearsal's region, the run with moto
behind the mocks, the bucket filled as an operator fills it, and a node booted for every instance EC2 (moto)
launched, with its security groups as the node's firewall. Shared by test_rehearsal.py and
bench/rehearsal_boot.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from region import KEY_PAIR, REGION, STACK, hypervisor, write_outputs

def config(cloud, **over) -> dict[str, str]:
    spec = {
        "preset": "tiny", "target": "cluster", "owner": "rehearsal",
        "network": json.dumps({"ssh": "allowlist", "allow_cidrs": [f"{cloud.gateway}/32"], "public_endpoint": True}),
        "replicas": json.dumps({"min": 1, "max": 1}),
    }
    cfg = {**spec, "keyName": KEY_PAIR, "image": cloud.image, "vpcCidr": cloud.vpc_cidr, "imageCheck": "true",
           "apiKey": "sk-rehearsal-key", "rayToken": "rehearsal-ray-token-0123456789abcdef"}
    cfg.update(over)
    return cfg


def up(cloud, model_dir: Path, encodings_dir: Path, *, stack: str = STACK, **over):
    """`pulumi up` with moto behind the mocks, then the weights mirror and the encodings in the stack's bucket
    (what an operator of a stack without internet egress does before the nodes boot:
    `aws s3 sync DIR s3://BUCKET/models/tiny/`, `aws s3 cp ... s3://BUCKET/encodings/`)."""
    import cloud as aws

    ec2 = cloud.client("ec2")
    if not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [KEY_PAIR]}])["KeyPairs"]:
        ec2.import_key_pair(KeyName=KEY_PAIR, PublicKeyMaterial=cloud.key.with_suffix(".pub").read_bytes())
    st = aws.up(config(cloud, **over), endpoint=cloud.moto.url, region=REGION, stack=stack,
                secret_keys=("apiKey", "rayToken"))
    bucket = st.outputs["weights_bucket"]
    s3 = cloud.client("s3")
    for f in sorted(model_dir.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"models/tiny/{f.relative_to(model_dir)}")
    for f in sorted(encodings_dir.glob("*.tiktoken")):
        s3.upload_file(str(f), bucket, f"encodings/{f.name}")
    return st


def nodes(cloud, name: str = "nodes"):
    """The hypervisor that boots the stack's instances as machines (close() tears them down)."""
    return hypervisor(cloud, name)


def instances(cloud, st) -> list[dict]:
    ec2 = cloud.client("ec2")
    out = []
    for res in ec2.describe_instances(Filters=[{"Name": "tag:stack", "Values": [STACK]},
                                               {"Name": "instance-state-name", "Values": ["pending", "running"]}]
                                      )["Reservations"]:
        out += res["Instances"]
    return out


def boot_all(cloud, st, hv) -> list:
    """Boot a node for every running instance of the stack that has none (what EC2 does after RunInstances)."""
    booted = []
    for inst in instances(cloud, st):
        if inst["InstanceId"] in hv.nodes:
            continue
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        lt = inst.get("LaunchTemplate", {}).get("LaunchTemplateId") or next(
            (t["Value"] for t in inst.get("Tags", []) if t["Key"] == "aws:ec2launchtemplate:id"), None)
        user_data = st.user_data(lt)
        booted.append(hv.boot(instance_id=inst["InstanceId"], address=inst["PrivateIpAddress"],
                              role=tags.get("gpt-oss-ops:role", "worker"), user_data=user_data,
                              public_key=cloud.key.with_suffix(".pub").read_text().strip(),
                              firewall=firewall(st, inst), tags=tags, instance_role="gpt-oss-node",
                              public_address=st.mocks.public_ips.get(inst["InstanceId"], "")))
    return booted


def firewall(st, inst) -> list[list[str]]:
    """iptables INPUT rules for one instance, from the security group rules the program registered: each
    rule's port range from its CIDR, or from the members of the group it references (self-references)."""
    rules = st.mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    groups = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
    members: dict[str, list[str]] = {}
    for other in st.mocks.client("ec2").describe_instances()["Reservations"]:
        for i in other["Instances"]:
            if i["State"]["Name"] in ("pending", "running"):
                for g in i.get("SecurityGroups", []):
                    members.setdefault(g["GroupId"], []).append(i["PrivateIpAddress"])
    out = [["-P", "INPUT", "DROP"], ["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"],
           ["-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
    for r in rules:
        i = r.inputs
        if r.id and i["securityGroupId"] not in groups:
            continue
        ports = f"{int(i['fromPort'])}:{int(i['toPort'])}"
        sources = [i["cidrIpv4"]] if i.get("cidrIpv4") else members.get(i.get("referencedSecurityGroupId"), [])
        for src in sources:
            out.append(["-A", "INPUT", "-p", "tcp", "-s", src, "--dport", ports, "-j", "ACCEPT"])
    return out


def refresh_firewalls(st, hv) -> None:
    """Security groups follow their members: re-render every node's rules when the set of instances changes."""
    ec2 = st.mocks.client("ec2")
    by_id = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    for instance_id, node in hv.nodes.items():
        subprocess.run(["ip", "netns", "exec", node.netns, "iptables", "-F", "INPUT"], check=True)
        for rule in firewall(st, by_id[instance_id]):
            subprocess.run(["ip", "netns", "exec", node.netns, "iptables", *rule], check=True, capture_output=True)


def nodes_by_role(hv) -> tuple:
    head = next(n for n in hv.nodes.values() if n.role == "head")
    workers = [n for n in hv.nodes.values() if n.role == "worker"]
    return head, workers




def ops_options(cloud, st, known_hosts: Path, *, stack: str = STACK) -> list[str]:
    """What every `ops` call of the rehearsal passes: the target, the stack, its outputs (as `pulumi stack output
    --json` writes them), the operator's key, and a known_hosts that records the nodes' keys on first contact."""
    outputs = write_outputs(cloud.run_dir / f"outputs-{stack}.json", st.output_json())
    return ["--target", "cluster", "--stack", stack, "--outputs", str(outputs), "--identity", str(cloud.key),
            "--known-hosts", str(known_hosts), "--accept-new-host-keys"]
