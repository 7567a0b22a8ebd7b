"""Every IAM policy document the program renders, audited by parliament (Duo Labs' IAM linter): no findings.
The audit really audits: an over-broad statement seeded into the node policy is caught."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string

from infra_mocks import run_main

# Findings accepted on purpose, each with its reason (parliament's own ignore_locations setting does not apply
# to settings read from YAML in 1.6.4, so the list is kept here):
ACCEPTED = {
    # A trust policy has no Resource element by definition (IAM refuses one); parliament is written for
    # permission policies.
    ("MALFORMED", "Statement contains neither Resource nor NotResource", "assumeRolePolicy"),
    # Pulling the serving image from a private ECR repository needs a registry login token; the call has no
    # resource scope, and AWS's own AmazonEC2ContainerRegistryReadOnly grants it. Accepted only when it is the
    # policy's one credential-exposing action.
    ("CREDENTIALS_EXPOSURE", "['ecr:getauthorizationtoken']", "policy"),
}


def _documents(run) -> dict[str, str]:
    docs = {}
    for r in run.mocks.resources:
        for key in ("policy", "assumeRolePolicy"):
            value = r.inputs.get(key)
            if isinstance(value, str) and '"Statement"' in value:
                docs[f"{r.type} {r.name} {key}"] = value
    return docs


def _findings(doc: str, kind: str = "policy") -> list[str]:
    policy = analyze_policy_string(doc, include_community_auditors=True)
    out = []
    for f in policy.findings:
        what = str(f.detail or f.location.get("actions", ""))
        if (f.issue, what, kind) not in ACCEPTED:
            out.append(f"{f.issue}: {what}")
    return out


@pytest.mark.parametrize("config", [{"preset": "gpt-oss-20b"}, {"preset": "gpt-oss-120b", "keyName": "k"},
                                    {"preset": "gpt-oss-20b", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/"
                                                                       "gpt-oss:1"}],
                         ids=["20b", "120b-ssh-over-ssm", "private-ecr"])
def test_every_rendered_policy_passes_parliament(config):
    docs = _documents(run_main(config))
    kinds = {k.split(" ")[0] for k in docs}
    assert {"aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:s3/bucketPolicy:BucketPolicy"} <= kinds
    for where, doc in docs.items():
        assert _findings(doc, where.rsplit(" ", 1)[-1]) == [], where


def test_a_seeded_over_broad_statement_is_caught():
    doc = json.loads(next(d for k, d in _documents(run_main({"preset": "gpt-oss-20b"})).items()
                          if k.startswith("aws:iam/rolePolicy:RolePolicy")))
    doc["Statement"].append({"Sid": "Oops", "Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]})
    found = _findings(json.dumps(doc))
    assert any(f.startswith("RESOURCE_STAR") for f in found), found
    doc["Statement"][-1] = {"Sid": "Oops", "Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": ["*"]}
    assert any(f.startswith("RESOURCE_STAR") for f in _findings(json.dumps(doc)))
