"""The API key, Ray's auth token and the hub token: SSM SecureString parameters the nodes read at boot.

Never in user-data, never in the repo, never on a command line. When the operator sets `gpt-oss-ops:apiKey` /
`rayToken` / `hubToken` as Pulumi secrets, the stack creates the parameters (the values stay encrypted in
Pulumi state); otherwise the parameters are expected to exist (`aws ssm put-parameter --type SecureString`).
Either way the instance role may read exactly these ARNs. Without the Ray token no node starts Ray: Ray's token
authentication is never off on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws


@dataclass
class SecretsArgs:
    stack: str
    region: str
    tags: dict[str, str]
    api_key: Any = None
    hub_token: Any = None
    ray_token: Any = None


def parameter_name(stack: str, what: str) -> str:
    return f"/gpt-oss-ops/{stack}/{what}"


class Secrets(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("gpt-oss-ops:aws:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.api_key_name = parameter_name(args.stack, "api-key")
        self.hub_token_name = parameter_name(args.stack, "hub-token")
        self.ray_token_name = parameter_name(args.stack, "ray-token")
        for what, value, param in (("api-key", args.api_key, self.api_key_name),
                                   ("hub-token", args.hub_token, self.hub_token_name),
                                   ("ray-token", args.ray_token, self.ray_token_name)):
            if value is not None:
                aws.ssm.Parameter(f"{name}-{what}", name=param, type="SecureString", value=value,
                                  description=f"gpt-oss-ops {what} (read by the nodes at boot)", tags=args.tags,
                                  opts=child)
        ident = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        partition = ident.arn.apply(lambda a: a.split(":")[1])

        def arn(param: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":ssm:", args.region, ":", ident.account_id,
                                        ":parameter", param)

        self.api_key_arn = arn(self.api_key_name)
        self.hub_token_arn = arn(self.hub_token_name)
        self.ray_token_arn = arn(self.ray_token_name)
        self.arns = [self.api_key_arn, self.hub_token_arn, self.ray_token_arn]
        self.register_outputs({"api_key_parameter": self.api_key_name, "hub_token_parameter": self.hub_token_name,
                               "ray_token_parameter": self.ray_token_name})
