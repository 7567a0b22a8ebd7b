"""The stack's configuration -> a resolved DeploymentSpec and the AWS-only options.

Read once, at the start of the program. Two ways to give the spec, combinable:
- `gpt-oss-ops:specFile` — a spec YAML (the same file `ops` reads), resolved by ops.spec;
- structured keys named like the spec's fields, e.g. `pulumi config set gpt-oss-ops:model gpt-oss-20b` or
  `pulumi config set --path 'gpt-oss-ops:network.allow_cidrs[0]' 203.0.113.0/24`. They form the file layer
  (over the spec file's values when both are given).
Unknown keys are refused by name, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.options import DEFAULT_IMAGE, DEFAULT_VPC_CIDR, InfraOptions
from ops import catalog
from ops.spec import FIELD_NAMES, Problem, Resolved, SpecError, _did_you_mean, load_spec_file, resolve

NAMESPACE = "gpt-oss-ops"
# Keys of the AWS stack itself, beside the spec's fields (see docs/infra.md).
INFRA_KEYS = {"specFile", "image", "imageCheck", "keyName", "allowUnlistedRegion", "vpcCidr", "apiKey", "hubToken",
              "rayToken"}
SECRET_KEYS = {"apiKey", "hubToken", "rayToken"}


def _value(raw: Any) -> Any:
    """Structured keys (`--path`) arrive as JSON objects or lists; scalars stay text for pydantic to parse."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _deep_merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in layer.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "tags" else v
    return out


def _bool(key: str, raw: str | None) -> tuple[bool, list[Problem]]:
    if raw is None:
        return False, []
    if str(raw).lower() in ("true", "1", "yes"):
        return True, []
    if str(raw).lower() in ("false", "0", "no"):
        return False, []
    return False, [Problem(key, f"{raw!r} is not true or false.", f"pulumi config set {NAMESPACE}:{key} true")]


def spec_from_values(values: dict[str, Any], *, base_dir: str | Path = ".",
                     secrets: dict[str, Any] | None = None) -> tuple[Resolved, InfraOptions]:
    """Resolve the spec and options from config values keyed without the namespace (e.g. "model").

    Raises SpecError naming each bad key or field and its fix. `secrets` carries the secret keys as Pulumi
    Outputs (never read as plain text here).
    """
    values = dict(values)
    problems: list[Problem] = []
    for key in sorted(values):
        if key not in FIELD_NAMES and key not in INFRA_KEYS:
            problems.append(Problem(f"{NAMESPACE}:{key}", "is neither a spec field nor a stack setting.",
                                    f"remove it (pulumi config rm {NAMESPACE}:{key}) or fix the spelling"
                                    f"{_did_you_mean(key, FIELD_NAMES | INFRA_KEYS)}."))
    allow_unlisted, bad = _bool("allowUnlistedRegion", values.get("allowUnlistedRegion"))
    problems += bad
    image_check, bad = _bool("imageCheck", values.get("imageCheck", "true"))
    problems += bad
    if problems:
        raise SpecError(problems, "pulumi config")

    layer = {k: _value(v) for k, v in values.items() if k in FIELD_NAMES and k != "preset"}
    preset = values.get("preset")
    label = "pulumi-config"
    data: dict[str, Any] = {}
    if values.get("specFile"):
        path = Path(values["specFile"])
        if not path.is_absolute():
            path = Path(base_dir) / path
        data = load_spec_file(path)
        label = f"file:{values['specFile']} + pulumi-config" if layer else f"file:{values['specFile']}"
    data = _deep_merge(data, layer)
    if preset is None and "preset" not in data:
        # `pulumi config set gpt-oss-ops:model gpt-oss-120b` alone means that model's documented preset.
        model = catalog.MODEL_ALIASES.get(str(data.get("model", "")), str(data.get("model", "")))
        preset = model if model in catalog.PRESETS else None
    resolved = resolve(preset=preset, file_data=data, file_label=label)

    secrets = secrets or {}
    options = InfraOptions(
        image=values.get("image") or DEFAULT_IMAGE,
        key_name=values.get("keyName") or None,
        allow_unlisted_region=allow_unlisted,
        vpc_cidr=values.get("vpcCidr") or DEFAULT_VPC_CIDR,
        image_check=image_check,
        api_key=secrets.get("apiKey"),
        hub_token=secrets.get("hubToken"),
        ray_token=secrets.get("rayToken"),
    )
    return resolved, options


def read() -> tuple[Resolved, InfraOptions]:
    """Read `gpt-oss-ops:*` from the running Pulumi stack's configuration (once, at program start)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    cfg = pulumi.Config(NAMESPACE)
    keys = set(runtime_config.get_config_env()) | set(runtime_config.CONFIG.get())
    prefix = NAMESPACE + ":"
    values: dict[str, Any] = {}
    for full in sorted(keys):
        if not full.startswith(prefix):
            continue
        key = full[len(prefix):]
        if key in SECRET_KEYS:
            continue
        raw = cfg.get(key)
        if raw is not None:
            values[key] = raw
    secrets = {k: cfg.get_secret(k) for k in SECRET_KEYS if prefix + k in keys}
    # A relative specFile is read from the project directory, where Pulumi.yaml is.
    return spec_from_values(values, base_dir=Path(__file__).resolve().parents[1], secrets=secrets)
