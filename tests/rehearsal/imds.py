"""The EC2 instance metadata service of one rehearsal node (IMDSv2 only, as the launch template requires):
run inside the node's network namespace, bound to 169.254.169.254:80.

    python imds.py METADATA.json

METADATA.json: {"instance-id", "region", "availability-zone", "local-ipv4", "public-ipv4", "role",
"user-data", "tags": {...}}. What it serves is what the boot script, the AWS CLI, boto3 (Ray's runtime-env
agent) and Docker's awslogs driver read from the real service: the session token (PUT /latest/api/token), the
instance's identity and addresses, its tags, and the instance role's credentials, which moto accepts.
"""

from __future__ import annotations

import datetime
import json
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKENS: set[str] = set()


def tree(meta: dict) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    creds = {"Code": "Success", "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "Type": "AWS-HMAC",
             "AccessKeyId": "ASIAREHEARSAL", "SecretAccessKey": "rehearsal-secret", "Token": "rehearsal-token",
             "Expiration": (now + datetime.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    ident = {"instanceId": meta["instance-id"], "region": meta["region"],
             "availabilityZone": meta["availability-zone"], "privateIp": meta["local-ipv4"],
             "accountId": "123456789012", "instanceType": meta.get("instance-type", "m7i.xlarge")}
    return {
        "latest/meta-data/instance-id": meta["instance-id"],
        "latest/meta-data/instance-type": ident["instanceType"],
        "latest/meta-data/local-ipv4": meta["local-ipv4"],
        "latest/meta-data/public-ipv4": meta.get("public-ipv4", ""),
        "latest/meta-data/placement/region": meta["region"],
        "latest/meta-data/placement/availability-zone": meta["availability-zone"],
        "latest/meta-data/iam/security-credentials/": meta["role"],
        f"latest/meta-data/iam/security-credentials/{meta['role']}": json.dumps(creds),
        "latest/meta-data/tags/instance": "\n".join(meta.get("tags", {})),
        **{f"latest/meta-data/tags/instance/{k}": v for k, v in meta.get("tags", {}).items()},
        "latest/dynamic/instance-identity/document": json.dumps(ident),
        "latest/user-data": meta.get("user-data", ""),
    }


def handler(paths: dict):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # one line per request, in the node's imds.log
            sys.stderr.write("%s %s\n" % (self.command, self.path))
            sys.stderr.flush()

        def _send(self, code: int, body: str = "", headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path.rstrip("/") != "/latest/api/token" or not ttl:
                return self._send(400)
            token = secrets.token_urlsafe(24)
            TOKENS.add(token)
            # As the real service: the granted lifetime comes back in a header (the AWS SDKs read it).
            self._send(200, token, {"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": ttl})

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") not in TOKENS:
                return self._send(401)  # IMDSv1 is off (http_tokens: required)
            body = paths.get(self.path.lstrip("/"))
            self._send(404) if body is None else self._send(200, body)

    return Handler


def main() -> None:
    meta = json.loads(open(sys.argv[1]).read())
    server = ThreadingHTTPServer(("169.254.169.254", 80), handler(tree(meta)))
    server.serve_forever()


if __name__ == "__main__":
    main()
