"""The serving image is checked before any resource exists: the reference (Ray's ray-llm tags), and the
registry, asked the way Docker asks it.

The registry side runs against Debian's docker-registry (CNCF distribution, the registry Docker Hub runs)
on loopback, with a manifest pushed through its HTTP API; Docker Hub's anonymous bearer-token challenge
against a registry that demands it; ECR through moto. The ray-llm tag that does not exist
(`2.60.0-py311-cu128`, which an earlier default named) is refused by name.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pulumi
import pytest

from infra import image
from infra.options import DEFAULT_IMAGE, RAY_VERSION
from infra_mocks import AwsMocks, run_main
from tests.support import free_port

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


# ------------------------------------------------------------------------------------------ references

@pytest.mark.parametrize("ref, fix", [
    ("rayproject/ray-llm:2.60.0-py311-cu128", f"rayproject/ray-llm:{RAY_VERSION}-py312-cu130"),
    ("rayproject/ray-llm:2.49.0-py312-cu130", f"rayproject/ray-llm:{RAY_VERSION}-py312-cu130"),
    ("rayproject/ray-llm", DEFAULT_IMAGE),
    ("Not An Image", DEFAULT_IMAGE),
])
def test_a_reference_that_cannot_be_pulled_is_refused_with_the_tag_to_use(ref, fix):
    with pytest.raises(image.ImageProblem) as e:
        image.check_reference(ref)
    assert fix in e.value.fix


def test_the_default_and_other_registries_pass_the_reference_check():
    assert image.check_reference(DEFAULT_IMAGE).name == "rayproject/ray-llm"
    assert image.check_reference(f"rayproject/ray-llm:{RAY_VERSION}-extra-py312-cu130")
    ref = image.check_reference("123456789012.dkr.ecr.us-east-1.amazonaws.com/gpt-oss-serve:1.4")
    assert (ref.registry, ref.name, ref.reference) == ("123456789012.dkr.ecr.us-east-1.amazonaws.com",
                                                        "gpt-oss-serve", "1.4")
    assert image.parse("ubuntu:24.04").name == "library/ubuntu"


# ----------------------------------------------------------------------------- a real registry (v2 API)

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry on loopback (plain HTTP, as a registry the nodes list as insecure), holding
    gpt-oss-serve:1.0."""
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is missing: run `make system-deps` (scripts/system-deps.sh installs it)"
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {root}/data}}}}\n"
                      f"http: {{addr: 127.0.0.1:{port}}}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base)
        _push(base, "gpt-oss-serve", "1.0")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait(base: str) -> None:
    import time

    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/v2/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer on {base}")


def _push(base: str, name: str, tag: str) -> None:
    """A one-config, no-layer image through the registry's own upload API (what `docker push` does)."""
    blob = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    req = urllib.request.Request(f"{base}/v2/{name}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req) as resp:
        location = resp.headers["Location"]
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest}", method="PUT", data=blob,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put).close()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "layers": [], "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "size": len(blob), "digest": digest}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{base}/v2/{name}/manifests/{tag}", method="PUT", data=manifest,
                                                  headers={"Content-Type": MANIFEST})).close()


def test_a_tag_the_registry_holds_passes(registry):
    image.check_exists(f"{registry}/gpt-oss-serve:1.0")


def test_a_missing_tag_is_refused_before_any_node_fails_at_docker_pull(registry):
    with pytest.raises(image.ImageProblem) as e:
        image.check_exists(f"{registry}/gpt-oss-serve:1.1")
    assert "does not exist" in e.value.message and "docker pull" in e.value.message
    assert "push the image first" in e.value.fix


def test_the_program_refuses_a_missing_tag_naming_the_config_key(registry):
    mocks = AwsMocks()
    with pytest.raises(pulumi.RunError) as err:
        run_main({"preset": "gpt-oss-20b", "image": f"{registry}/gpt-oss-serve:1.1", "imageCheck": "true"},
                 mocks=mocks)
    assert mocks.resources == []
    line = next(ln for ln in str(err.value).splitlines() if ln.strip().startswith(f"- {image.FIELD}:"))
    assert "does not exist" in line and "Fix:" in line


def test_an_unreachable_registry_says_how_to_skip_the_check():
    with pytest.raises(image.ImageProblem) as e:
        image.check_exists(f"127.0.0.1:{free_port()}/gpt-oss-serve:1.0", timeout=2)
    assert "imageCheck false" in e.value.fix


# ------------------------------------------------------------ Docker Hub's anonymous bearer-token flow

class _TokenRegistry(BaseHTTPRequestHandler):
    """A registry that, like Docker Hub, answers 401 with a Bearer challenge and takes the anonymous token
    its realm hands out."""

    tags = {"rayproject/ray-llm": {f"{RAY_VERSION}-py312-cu130"}}
    token = "anonymous-pull-token"

    def log_message(self, *args):
        pass

    def do_GET(self):  # the token realm
        assert self.path.startswith("/token?") and "scope=repository" in self.path
        body = json.dumps({"token": self.token}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        name, _, tag = self.path.removeprefix("/v2/").partition("/manifests/")
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            host = self.headers["Host"]
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="registry.test",'
                                                 f'scope="repository:{name}:pull"')
        else:
            assert MANIFEST in self.headers.get("Accept", "")
            self.send_response(200 if tag in self.tags.get(name, ()) else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def token_registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_anonymous_token_is_fetched_and_used(token_registry):
    image.check_exists(f"{token_registry}/rayproject/ray-llm:{RAY_VERSION}-py312-cu130")
    with pytest.raises(image.ImageProblem, match="does not exist"):
        image.check_exists(f"{token_registry}/rayproject/ray-llm:{RAY_VERSION}-py311-cu128")


# ---------------------------------------------------------------------------------------------- ECR

def test_ecr_is_asked_with_the_operators_credentials(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        ecr = boto3.client("ecr", region_name="us-east-1")
        repo = ecr.create_repository(repositoryName="gpt-oss-serve")["repository"]
        ecr.put_image(repositoryName="gpt-oss-serve", imageTag="1.0", imageManifest=json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST, "layers": [],
             "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                        "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()}}))
        host = repo["repositoryUri"].split("/", 1)[0]
        image.check_exists(f"{host}/gpt-oss-serve:1.0")
        with pytest.raises(image.ImageProblem, match="ImageNotFoundException"):
            image.check_exists(f"{host}/gpt-oss-serve:2.0")
        with pytest.raises(image.ImageProblem, match="RepositoryNotFoundException"):
            image.check_exists(f"{host}/other:1.0")
