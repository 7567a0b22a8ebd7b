"""The head-node side of the cluster target: small commands run *on* a node from the installed bundle
(`python -m ops.remote.serve_remote VERB ...`, with the bundle on PYTHONPATH).

Rendering the Serve config on the head means the code that derives it from the spec is exactly the code the
replicas will run, and nothing secret travels inside a command line (the API key stays in a 0600 file).
Each verb prints one JSON document on stdout for the operator's side to read.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

APP_IMPORT_PATH = "app.serve_gpt_oss:build_app"
FALLBACK_IMPORT_PATH = "ray.serve.llm:build_openai_app"


# Runs on a node without the bundle (`python -c API_SCRIPT URL`): GET a Ray dashboard route on that node and
# print {"status", "data"} or {"error"}. Status, wait and terminate use it before any bundle is installed. It
# sends the cluster's Ray token (from the environment Ray's own processes read it from) as Ray's CLI does.
API_SCRIPT = r"""
import json, os, sys, urllib.error, urllib.request
token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
if not token and os.environ.get("RAY_AUTH_TOKEN_PATH"):
    try:
        token = open(os.environ["RAY_AUTH_TOKEN_PATH"]).read().strip()
    except OSError:
        pass
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + token} if token else {})
try:
    with urllib.request.urlopen(req, timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 10) as r:
        print(json.dumps({"status": r.status, "data": json.loads(r.read().decode() or "null")}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "error": e.read().decode(errors="replace")[:2000]}))
except (OSError, ValueError) as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
"""


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _has_app_module(bundle_dir: str) -> bool:
    return (Path(bundle_dir) / "app" / "serve_gpt_oss.py").is_file()


def render_config(spec_json: str, *, bundle_dir: str, encodings_dir: str, model_source: str | None,
                  api_key_file: str | None, code_uri: str | None = None) -> dict[str, Any]:
    """The Serve config for the spec. The replicas import the app from `code_uri` (Ray's runtime_env
    working_dir in the stack's bucket, which every node, also one that joins later, fetches itself) when given,
    else from the bundle installed on every node (PYTHONPATH)."""
    from ops.render import serve_config
    from ops.spec import DeploymentSpec

    spec = DeploymentSpec.model_validate_json(spec_json)
    config = serve_config(spec, model_source=model_source, encodings_dir=encodings_dir)
    for app in config["applications"]:
        args = app["args"]
        if code_uri:
            app["runtime_env"] = {"working_dir": code_uri}
        else:
            app["runtime_env"] = {"env_vars": {"PYTHONPATH": bundle_dir}}
            for llm in args.get("llm_configs", []):
                llm.setdefault("runtime_env", {}).setdefault("env_vars", {})["PYTHONPATH"] = bundle_dir
        if api_key_file and "auth" in args:
            args["auth"]["api_key_file"] = api_key_file
        if not _has_app_module(bundle_dir):
            # The gpt-oss application module is not in this bundle: serve Ray's own OpenAI app instead.
            app["import_path"] = FALLBACK_IMPORT_PATH
            app["args"] = {"llm_configs": args["llm_configs"]}
    return config


def cmd_render(a: argparse.Namespace) -> dict[str, Any]:
    import yaml

    config = render_config(Path(a.spec).read_text(), bundle_dir=a.bundle_dir, encodings_dir=a.encodings,
                           model_source=a.model_source or None, api_key_file=a.api_key_file or None,
                           code_uri=a.code_uri or None)
    text = yaml.safe_dump(config, sort_keys=False)
    out = Path(a.out)
    old = out.read_text() if out.is_file() else None
    if old != text:
        _atomic_write(out, text)
    return {"path": str(out), "changed": old != text,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "import_path": config["applications"][0]["import_path"]}


def cmd_api(a: argparse.Namespace) -> dict[str, Any]:
    """GET a Ray dashboard route on this node; {"error": ...} when the dashboard does not answer."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(a.url, timeout=a.timeout) as resp:
            return {"status": resp.status, "data": json.loads(resp.read().decode() or "null")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": e.read().decode(errors="replace")[:2000]}
    except (OSError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def cmd_sha(a: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for p in a.paths:
        try:
            out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except OSError:
            out[p] = None
    return out


def cmd_logs(a: argparse.Namespace) -> dict[str, Any]:
    """The last lines of the Serve logs and of the worker (engine) logs of this node's Ray session."""
    logs = Path(a.temp_dir) / "session_latest" / "logs"
    patterns = [str(logs / "serve" / "*.log"), str(logs / "worker-*.err"), str(logs / "worker-*.out"),
                str(logs / "raylet.out")]
    files = sorted({f for p in patterns for f in glob.glob(p)}, key=lambda f: os.path.getmtime(f), reverse=True)
    files = [f for f in files if os.path.getsize(f) > 0][: a.max_files]
    out = {}
    for f in sorted(files):
        with open(f, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            lines = fh.read().decode(errors="replace").splitlines()
        out[os.path.relpath(f, logs)] = "\n".join(lines[-a.lines:])
    return {"dir": str(logs), "exists": logs.is_dir(), "files": out}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ops.remote.serve_remote")
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("render")
    r.add_argument("--spec", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--bundle-dir", required=True)
    r.add_argument("--encodings", required=True)
    r.add_argument("--model-source", default="")
    r.add_argument("--api-key-file", default="")
    r.add_argument("--code-uri", default="")
    api = sub.add_parser("api")
    api.add_argument("url")
    api.add_argument("--timeout", type=float, default=10.0)
    sha = sub.add_parser("sha")
    sha.add_argument("paths", nargs="+")
    lg = sub.add_parser("logs")
    lg.add_argument("--temp-dir", required=True)
    lg.add_argument("--lines", type=int, default=100)
    lg.add_argument("--max-files", type=int, default=40)
    a = p.parse_args(argv)
    handler = {"render": cmd_render, "api": cmd_api, "sha": cmd_sha, "logs": cmd_logs}[a.verb]
    sys.stdout.write(json.dumps(handler(a)) + "\n")


if __name__ == "__main__":
    main()
