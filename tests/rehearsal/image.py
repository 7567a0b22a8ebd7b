"""The rehearsal's serving image: built once, before the suite, into a local registry's storage; cached by a
content hash of its recipe.

    python tests/rehearsal/image.py build      # what `make test` runs (a no-op when the cache holds the tag)
    python tests/rehearsal/image.py show       # the image reference and where the registry storage is

The base is a Debian rootfs from mmdebstrap (Docker Hub is not reachable here); the Python layer is the exact
set of distributions the test environment runs for the `local` extra's serving stack (Ray Serve 2.60, vLLM's
CPU build, torch CPU and what they need), copied file by file from their RECORDs, so the image serves the code
the rest of the suite tested. The Dockerfile beside this file gives it the real image's user and paths.
Nothing is downloaded at test time: the tests start a registry on the cached storage.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from daemons import Dockerd, Registry, free_port  # noqa: E402

REPOSITORY = "gpt-oss-serve-cpu"
SUITE = "bookworm"
# What the real image has that the serving path touches: bash, curl, sudo, CA certificates; Python from Debian;
# libgomp/libnuma for torch's and vLLM's CPU kernels; a C/C++ compiler (the real image has build-essential:
# Triton builds with it on GPUs, torch's inductor compiles vLLM's CPU model with it here: without it the engine
# dies with "InvalidCxxCompiler: No working C++ compiler found").
DEBIAN_PACKAGES = ["python3", "python3-venv", "python3-dev", "ca-certificates", "curl", "sudo", "procps", "libgomp1",
                   "libnuma1", "iproute2", "g++", "libc6-dev"]
# The serving stack (the `local` extra's requirements, read from pyproject by the closure) plus what Ray's
# runtime_env needs to fetch a working_dir from S3 (boto3, smart_open), as the real image has.
EXTRA_ROOTS = ["boto3", "smart_open[s3]"]
# Distributions left out although something names them: triton (1 GB; a GPU compiler that vLLM's CPU path
# disables itself), and the torchvision/torchaudio/torchcodec builds that do not match the CPU torch.
LEFT_OUT = {"triton", "torchvision", "torchaudio", "torchcodec"}


def cache_dir() -> Path:
    return Path(os.environ.get("GPT_OSS_REHEARSAL_CACHE") or ROOT / ".ops" / "rehearsal")


def _local_requirements() -> list[str]:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(data["project"]["optional-dependencies"]["local"]) + list(data["project"]["dependencies"])


def closure(roots: list[str]) -> dict[str, md.Distribution]:
    """Every installed distribution the roots need (markers and extras evaluated), by canonical name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[tuple[str, frozenset], md.Distribution] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in LEFT_OUT:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen[key] = dist
        for spec in dist.requires or []:
            sub = Requirement(spec)
            extras = req.extras or {""}
            if sub.marker and not any(sub.marker.evaluate({"extra": e}) for e in extras):
                continue
            todo.append(sub)
    return {canonicalize_name(d.metadata["Name"]): d for d in seen.values()}


def recipe() -> dict:
    dists = closure(_local_requirements() + EXTRA_ROOTS)
    return {
        "dockerfile": hashlib.sha256((HERE / "image" / "Dockerfile").read_bytes()).hexdigest(),
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "debian": [SUITE, *DEBIAN_PACKAGES],
        "python": sys.version.split()[0],
        "distributions": sorted(f"{n}=={d.version}" for n, d in dists.items()),
    }


def tag() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


def registry_storage() -> Path:
    return cache_dir() / "registry"


def _copy_site(dists: dict[str, md.Distribution], dest: Path) -> int:
    """Each distribution's RECORDed files into dest (a venv prefix); console scripts get the image's Python."""
    site = dest / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    n = 0
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            src = (base / f).resolve()
            if not src.is_file() or "__pycache__" in f.parts:
                continue
            rel = Path(os.path.normpath(site / f))
            rel.parent.mkdir(parents=True, exist_ok=True)
            if rel.parent.name == "bin" and rel.parent.parent == dest:
                text = src.read_bytes()
                if text.startswith(b"#!"):
                    text = b"#!/home/ray/anaconda3/bin/python3\n" + text.split(b"\n", 1)[1]
                rel.write_bytes(text)
                rel.chmod(0o755)
            else:
                shutil.copy2(src, rel)
            n += 1
    return n


def build(log=print) -> str:
    """Build and push the image unless the cached registry already holds it; returns its repository:tag."""
    t = tag()
    storage = registry_storage()
    probe = Registry(storage, "127.0.0.1", 0, cache_dir() / "work")
    if probe.has_tag(REPOSITORY, t):
        log(f"rehearsal image {REPOSITORY}:{t} already in {storage}")
        return f"{REPOSITORY}:{t}"
    for tool in ("mmdebstrap", "dockerd", "docker-registry"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run `make system-deps` (scripts/system-deps.sh)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=cache_dir()) as tmp:
        work = Path(tmp)
        ctx = work / "ctx"
        ctx.mkdir()
        log(f"rehearsal image {REPOSITORY}:{t}: Debian {SUITE} rootfs (mmdebstrap)")
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
                        SUITE, str(work / "base.tar")], check=True)
        dists = closure(_local_requirements() + EXTRA_ROOTS)
        n = _copy_site(dists, ctx / "site")
        log(f"rehearsal image: {len(dists)} Python distributions ({n} files) from the test environment")
        shutil.copy(HERE / "image" / "Dockerfile", ctx / "Dockerfile")
        port = free_port()
        registry = Registry(storage, "127.0.0.1", port, work / "registry").start()
        docker = Dockerd(work / "docker", str(work / "docker.sock")).start()
        try:
            with open(work / "base.tar", "rb") as fh:
                docker.docker("import", "-", "gpt-oss-rehearsal-base:latest", stdin=fh)
            ref = f"127.0.0.1:{port}/{REPOSITORY}:{t}"
            log("rehearsal image: docker build")
            docker.docker("build", "--network", "none", "-t", ref, str(ctx), timeout=1800)
            log(f"rehearsal image: docker push to the cache ({storage})")
            docker.docker("push", ref, timeout=1800)
        finally:
            docker.stop()
            registry.stop()
    if not probe.has_tag(REPOSITORY, t):
        raise SystemExit(f"the push finished but {storage} holds no {REPOSITORY}:{t}")
    (cache_dir() / "image.json").write_text(json.dumps({"repository": REPOSITORY, "tag": t, **recipe()}, indent=1))
    return f"{REPOSITORY}:{t}"


if __name__ == "__main__":
    verb = sys.argv[1] if len(sys.argv) > 1 else "build"
    if verb == "build":
        print(build())
    elif verb == "show":
        print(json.dumps({"image": f"{REPOSITORY}:{tag()}", "storage": str(registry_storage())}))
    else:
        raise SystemExit("usage: image.py build|show")
