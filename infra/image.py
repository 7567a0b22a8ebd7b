"""The serving image reference, checked before any resource exists.

Two checks, both at `pulumi preview` / `pulumi up` time:
- the reference itself: well-formed, and for Ray's own `rayproject/ray-llm` images a tag of the form Ray
  publishes (`VERSION[-extra]-py312-cu130`: ray-llm is built for Python 3.12 and CUDA 13.0 only) for the Ray
  release this project pins (its Serve LLM code must match the image's);
- the registry: the tag exists (Docker Registry HTTP API v2, `HEAD /v2/NAME/manifests/TAG`, with the anonymous
  bearer token Docker Hub and most registries hand out; for a private ECR repository, `ecr:DescribeImages`
  with the operator's credentials). `gpt-oss-ops:imageCheck false` skips this one, for a machine that cannot
  reach the registry.
Either failure names `gpt-oss-ops:image` and the fix, so a node never boots into `docker pull` failing forever.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from infra.options import DEFAULT_IMAGE, RAY_VERSION

FIELD = "gpt-oss-ops:image"
RAY_LLM_REPOSITORIES = ("rayproject/ray-llm", "anyscale/ray-llm")
RAY_LLM_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+)(-extra)?-py312-cu130")
_REFERENCE = re.compile(r"(?:(?P<registry>[a-zA-Z0-9.-]+(?::\d+)?)/)?(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                        r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")
_ECR_HOST = re.compile(r"\d{12}\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?")
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "registry-1.docker.io" for Docker Hub
    name: str  # library/ubuntu, rayproject/ray-llm, REPO
    reference: str  # the tag, or the digest

    @property
    def display(self) -> str:
        host = "" if self.registry == "registry-1.docker.io" else self.registry + "/"
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{host}{self.name}{sep}{self.reference}"


class ImageProblem(ValueError):
    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message, self.fix = message, fix


def parse(image: str) -> ImageRef:
    m = _REFERENCE.fullmatch(image.strip())
    if not m:
        raise ImageProblem(f"{image!r} is not an image reference.",
                           f"write REGISTRY/REPOSITORY:TAG, e.g. {DEFAULT_IMAGE}.")
    registry, name = m.group("registry"), m.group("name")
    if registry and "." not in registry and ":" not in registry and registry != "localhost":
        name, registry = f"{registry}/{name}", None  # "rayproject/ray-llm": a Docker Hub namespace, not a host
    if not registry:
        registry = "registry-1.docker.io"
        if "/" not in name:
            name = f"library/{name}"
    reference = m.group("digest") or m.group("tag")
    if not reference:
        raise ImageProblem(f"{image!r} names no tag: every node would pull whatever `latest` is that day.",
                           f"pin a tag (or a digest), e.g. {DEFAULT_IMAGE}.")
    return ImageRef(registry, name, reference)


def check_reference(image: str) -> ImageRef:
    """Raise ImageProblem for a malformed reference or a ray-llm tag Ray does not publish for the pinned Ray."""
    ref = parse(image)
    if ref.registry == "registry-1.docker.io" and ref.name in RAY_LLM_REPOSITORIES and ":" not in ref.reference:
        m = RAY_LLM_TAG.fullmatch(ref.reference)
        if not m:
            raise ImageProblem(f"{ref.name}:{ref.reference} is not a tag Ray publishes: ray-llm images are built "
                               "for Python 3.12 and CUDA 13.0 only (tags VERSION[-extra]-py312-cu130).",
                               f"use {ref.name}:{RAY_VERSION}-py312-cu130.")
        if m.group("version") != RAY_VERSION:
            raise ImageProblem(f"{ref.name}:{ref.reference} carries Ray {m.group('version')}, but this version of "
                               f"gpt-oss-ops renders Serve configs for Ray {RAY_VERSION}.",
                               f"use {ref.name}:{RAY_VERSION}-py312-cu130.")
    return ref


def check_exists(image: str, timeout: float = 10.0) -> None:
    """Raise ImageProblem unless the registry has the tag (or digest)."""
    ref = check_reference(image)
    ecr = _ECR_HOST.fullmatch(ref.registry)
    if ecr:
        return _ecr_exists(ref, ecr.group("region"))
    path = f"/v2/{ref.name}/manifests/{ref.reference}"
    try:
        try:
            status = _head(f"https://{ref.registry}{path}", timeout)
        except (urllib.error.URLError, OSError) as e:
            # A registry without TLS (one the nodes' Docker lists as insecure): ask it the way Docker would.
            if not _tls_failure(e):
                raise
            status = _head(f"http://{ref.registry}{path}", timeout)
    except OSError as e:
        raise ImageProblem(f"cannot ask {ref.registry} whether {ref.display} exists ({e}).",
                           "check the registry name and this machine's network, or skip the check with "
                           "`pulumi config set gpt-oss-ops:imageCheck false` (the nodes must still reach it).") from None
    if status == 404:
        raise ImageProblem(f"{ref.display} does not exist in {ref.registry}: every node would fail at `docker pull`.",
                           f"pick a published tag, e.g. {DEFAULT_IMAGE}, or push the image first.")
    if status in (401, 403):
        raise ImageProblem(f"{ref.registry} refuses to show {ref.display} without credentials.",
                           "use an image the nodes can pull (a public one, or ECR in the stack's account), or "
                           "skip the check with `pulumi config set gpt-oss-ops:imageCheck false`.")
    if status >= 400:
        raise ImageProblem(f"{ref.registry} answered HTTP {status} for {ref.display}.",
                           "retry later, or skip the check with `pulumi config set gpt-oss-ops:imageCheck false`.")


def _tls_failure(e: Exception) -> bool:
    import ssl

    reason = getattr(e, "reason", e)
    return isinstance(reason, ssl.SSLError) or "SSL" in str(reason) or "wrong version number" in str(reason)


def _head(url: str, timeout: float, token: str | None = None) -> int:
    headers = {"Accept": MANIFEST_TYPES}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method="HEAD", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        challenge = e.headers.get("WWW-Authenticate", "")
        if e.code == 401 and token is None and challenge.lower().startswith("bearer "):
            return _head(url, timeout, _anonymous_token(challenge, timeout))
        return e.code


def _anonymous_token(challenge: str, timeout: float) -> str | None:
    """The anonymous pull token a `Bearer realm=...,service=...,scope=...` challenge offers."""
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", None)
    if not realm:
        return None
    with urllib.request.urlopen(f"{realm}?{urllib.parse.urlencode(params)}", timeout=timeout) as resp:
        body = json.loads(resp.read() or b"{}")
    return body.get("token") or body.get("access_token")


def _ecr_exists(ref: ImageRef, region: str) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    image_id = {"imageDigest": ref.reference} if ref.reference.startswith("sha256:") else {"imageTag": ref.reference}
    account = ref.registry.split(".", 1)[0]
    try:
        boto3.client("ecr", region_name=region).describe_images(registryId=account, repositoryName=ref.name,
                                                                imageIds=[image_id])
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise ImageProblem(f"{ref.display} does not exist ({code}).",
                               "push the image to that repository first, or fix the tag.") from None
        raise ImageProblem(f"cannot check {ref.display} in ECR: {code or e}.",
                           "check your AWS credentials, or skip the check with "
                           "`pulumi config set gpt-oss-ops:imageCheck false`.") from None
    except BotoCoreError as e:
        raise ImageProblem(f"cannot check {ref.display} in ECR: {e}.",
                           "check your AWS credentials and network, or skip the check with "
                           "`pulumi config set gpt-oss-ops:imageCheck false`.") from None
