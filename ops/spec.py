"""The deployment spec: one typed, validated description of a gpt-oss deployment.

infra/ (Pulumi), app/ (Ray Serve LLM config) and ops/ (deploy, status, terminate) all read a resolved
`DeploymentSpec`; none of them re-derives a value the spec holds. Every combination that cannot work is
refused here, naming the field and the fix, before any cloud resource is created or any money is spent.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ops import catalog

# --------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} Fix: {self.fix}"


class SpecError(ValueError):
    """A spec that cannot work. Holds every problem found, each naming its field and its fix."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"invalid deployment spec{where}:"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class _Fail(ValueError):
    """Raised inside validators; carries the fix (and, when it is not the validated field, the field) so the
    Problem built from it can name them. pydantic hands the exception back in the error's context."""

    def __init__(self, message: str, fix: str, field: str | None = None):
        self.message = message
        self.fix = fix
        self.field = field
        super().__init__(message)


# ----------------------------------------------------------------------------------------- the spec


class Target(str, Enum):
    local = "local"
    cluster = "cluster"
    anyscale = "anyscale"


class ReasoningEffort(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, use_enum_values=False)


class Replicas(_Strict):
    """Serve autoscaling bounds for the LLM deployment (Ray Serve `autoscaling_config`)."""

    min: int = Field(1, ge=0, description="min_replicas (0 allows scale to zero)")
    max: int = Field(1, ge=1, description="max_replicas")
    target_ongoing_requests: int | None = Field(None, ge=1, description="Serve's per-replica target load")

    @model_validator(mode="after")
    def _bounds(self) -> "Replicas":
        if self.min > self.max:
            raise _Fail(f"min ({self.min}) is greater than max ({self.max}).",
                        f"set replicas.min <= replicas.max, e.g. min={self.max} or max={self.min}.")
        return self


class Network(_Strict):
    """Who may reach the endpoint (and SSH, when SSM is not used)."""

    allow_cidrs: list[str] = Field(default_factory=list, description="CIDRs allowed to reach the endpoint")
    allow_world: bool = Field(False, description="explicit override to allow 0.0.0.0/0 or ::/0")
    public_endpoint: bool = Field(False, description="put the endpoint on a public address")
    ssh: Literal["ssm", "allowlist", "none"] = Field("ssm", description="how operators reach nodes")
    tls: bool = Field(False, description="terminate TLS on an ALB with an ACM certificate")
    certificate_arn: str | None = None

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        out = []
        for cidr in v:
            try:
                out.append(str(ipaddress.ip_network(str(cidr).strip(), strict=False)))
            except ValueError:
                raise _Fail(f"{cidr!r} is not a CIDR.", "write an address block like 203.0.113.0/24 or 198.51.100.7/32.")
        return out

    @model_validator(mode="after")
    def _world(self) -> "Network":
        world = [c for c in self.allow_cidrs if c in ("0.0.0.0/0", "::/0")]
        if world and not self.allow_world:
            raise _Fail(f"{world[0]} opens the endpoint to the whole internet.",
                        "list your own networks instead, or set network.allow_world: true if you really mean it.",
                        field="network.allow_cidrs")
        if self.public_endpoint and not self.allow_cidrs:
            raise _Fail("a public endpoint with an empty allow-list would be unreachable (or, with a permissive "
                        "default, open to everyone).",
                        "add the networks of your clients to network.allow_cidrs, e.g. 203.0.113.0/24.",
                        field="network.allow_cidrs")
        if self.tls and not self.certificate_arn:
            raise _Fail("TLS needs an ACM certificate.", "set network.certificate_arn to an ACM certificate ARN.",
                        field="network.certificate_arn")
        return self


class Auth(_Strict):
    """Endpoint authentication. On by default; off only by an explicit `enabled: false`."""

    enabled: bool = True
    api_key_env: str = Field("GPT_OSS_API_KEY", description="env var that holds the API key(s), comma-separated")
    api_key_file: str | None = Field(None, description="file holding the API key(s), one per line")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise _Fail(f"{v!r} is not an environment variable name.", "use letters, digits and _, e.g. GPT_OSS_API_KEY.")
        return v


class Limits(_Strict):
    """What one request to the endpoint may ask for; beyond it the endpoint answers an OpenAI-shaped 4xx naming
    the field, before the request reaches a replica."""

    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest request body (413 above it)")
    max_n: int = Field(4, ge=1, le=128, description="largest `n` (choices per request)")
    max_tokens: int | None = Field(None, ge=1, description="largest max_tokens / max_output_tokens; "
                                                           "max_model_len when unset")


class Aws(_Strict):
    region: str = "us-east-1"
    instance_type: str | None = Field(None, description="GPU worker instance type; chosen from the catalog if unset")
    head_instance_type: str = catalog.HEAD_INSTANCE_TYPE
    spot: bool = Field(False, description="spot workers with on-demand fallback")
    ami_id: str | None = Field(None, description="override the Deep Learning AMI lookup")
    root_volume_gib: int | None = Field(None, ge=8, le=16384)
    weights_bucket: str | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", v):
            raise _Fail(f"{v!r} is not an AWS region name.", "use a region such as us-east-1 or eu-west-1.")
        return v


class DeploymentSpec(_Strict):
    """One gpt-oss deployment. Read by infra/, app/ and ops/; rendered into every config file."""

    name: str = Field("deploy-gpt-oss", description="deployment / service name")
    model: str = Field(catalog.PRESETS[catalog.DEFAULT_PRESET]["model"], description="catalog model key")
    model_id: str = Field("my-gpt-oss", description="the model name clients send (served model id)")
    model_source: str | None = Field(None, description="HF id, ModelScope id, local dir or s3:// path; "
                                                       "the catalog's HF id when unset")
    use_modelscope: bool = Field(False, description="download from the ModelScope mirror instead of the HF Hub")
    accelerator: str = "CPU"
    gpus_per_replica: int | None = Field(None, ge=1, description="defaults to tensor x pipeline parallel size")
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(2048, description="context length per request (prompt + output)")
    gpu_memory_utilization: float | None = Field(None, description="vLLM's fraction of GPU memory; unset: the "
                                                                   "vLLM release's default (0.92 since 0.24)")
    replicas: Replicas = Field(default_factory=Replicas)
    reasoning_effort: ReasoningEffort = ReasoningEffort.medium
    target: Target = Target.local
    network: Network = Field(default_factory=Network)
    auth: Auth = Field(default_factory=Auth)
    limits: Limits = Field(default_factory=Limits)
    aws: Aws = Field(default_factory=Aws)
    owner: str = Field("unknown", description="who to ask about this deployment (tag)")
    ttl_hours: float | None = Field(None, gt=0, description="expected lifetime (tag for the orphan check)")
    tags: dict[str, str] = Field(default_factory=dict)
    log_engine_metrics: bool = True
    stream_batching_interval_ms: float | None = Field(
        None, ge=0, le=1000, description="how long an LLM replica gathers a stream's tokens before sending them on "
        "to the ingress (Ray Serve LLM's `stream_batching_interval_ms`; its default 50 ms when unset); longer "
        "intervals send fewer, larger messages per stream, 0 sends each chunk as it comes")
    engine_args: dict[str, Any] = Field(default_factory=dict, description="further vLLM engine arguments "
                                        "(e.g. max_num_batched_tokens), checked against the vLLM release served")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the OpenAI-compatible endpoint")
    ttft_slo_ms: int = Field(2000, ge=1, description="TTFT p95 objective used by alert rules")

    # -- field checks ----------------------------------------------------------------------------------
    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", v):
            raise _Fail(f"{v!r} is not a valid name.", "use lower-case letters, digits and '-', at most 63 "
                        "characters, e.g. deploy-gpt-oss.")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        key = catalog.MODEL_ALIASES.get(v, v)
        if key not in catalog.MODELS:
            raise _Fail(f"unknown model {v!r}.", f"use one of {', '.join(catalog.MODELS)}{_did_you_mean(v, catalog.MODELS)}.")
        return key

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}", v):
            raise _Fail(f"{v!r} is not a usable served model id.", "use letters, digits and . _ / : -, e.g. my-gpt-oss.")
        return v

    @field_validator("model_source")
    @classmethod
    def _model_source(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith("s3://") and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", v):
            raise _Fail(f"{v!r} is not an S3 path.", "write s3://BUCKET/PREFIX with a valid bucket name.")
        if "://" in v and not v.startswith(("s3://", "gs://")):
            raise _Fail(f"{v!r}: only s3:// and gs:// URLs are supported as model sources.",
                        "use a Hugging Face id (openai/gpt-oss-20b), a local directory or s3://BUCKET/PREFIX.")
        return v

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, v: str) -> str:
        key = catalog.ACCELERATOR_ALIASES.get(v, v)
        if key not in catalog.ACCELERATORS:
            raise _Fail(f"unknown accelerator {v!r}.",
                        f"use one of {', '.join(catalog.ACCELERATORS)}{_did_you_mean(v, catalog.ACCELERATORS)}.")
        return key

    @field_validator("max_model_len")
    @classmethod
    def _max_model_len(cls, v: int) -> int:
        if v <= 0:
            raise _Fail(f"{v} is not a context length.", "set max_model_len to a positive number of tokens, e.g. 32768.")
        return v

    @field_validator("gpu_memory_utilization")
    @classmethod
    def _gmu(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 1:
            raise _Fail(f"{v} is not a fraction of GPU memory.", "use a value in (0, 1], e.g. 0.92 (vLLM's default), or "
                        "leave it unset.")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = {"project", "stack", "model", "owner", "ttl"}
        clash = sorted(reserved & {k.lower() for k in v})
        if clash:
            raise _Fail(f"tag {clash[0]!r} is set by gpt-oss-ops itself.",
                        "remove it from tags; use the spec fields (owner, ttl_hours) instead.")
        for k, val in v.items():
            if len(k) > 128 or len(str(val)) > 256:
                raise _Fail(f"tag {k!r} is too long for AWS.", "keep keys <= 128 and values <= 256 characters.")
        return v

    # -- cross-field checks: model x accelerator x parallelism x context x instance ------------------------
    @model_validator(mode="after")
    def _combination(self) -> "DeploymentSpec":
        m = catalog.model(self.model)
        acc = catalog.accelerator(self.accelerator)
        tp, pp = self.tensor_parallel_size, self.pipeline_parallel_size

        if self.max_model_len > m.max_position_embeddings:
            raise _Fail(f"{self.max_model_len} is above {m.key}'s limit of {m.max_position_embeddings:,} tokens.",
                        f"set max_model_len <= {m.max_position_embeddings}.", field="max_model_len")
        if self.limits.max_tokens is not None and self.limits.max_tokens > self.max_model_len:
            raise _Fail(f"limits.max_tokens {self.limits.max_tokens} is above max_model_len {self.max_model_len}: no "
                        "request could get that many tokens.", f"set limits.max_tokens <= {self.max_model_len}, or "
                        "unset it (it defaults to max_model_len).", field="limits.max_tokens")
        if m.num_attention_heads % tp or m.num_key_value_heads % tp and tp % m.num_key_value_heads:
            raise _Fail(f"tensor_parallel_size {tp} does not divide {m.key}'s {m.num_attention_heads} attention "
                        f"heads / {m.num_key_value_heads} KV heads.",
                        "use a power of two such as 1, 2, 4 or 8.", field="tensor_parallel_size")
        if pp > m.num_hidden_layers:
            raise _Fail(f"pipeline_parallel_size {pp} is more than {m.key}'s {m.num_hidden_layers} layers.",
                        f"use at most {m.num_hidden_layers}.", field="pipeline_parallel_size")
        gpus = self.gpus_per_replica if self.gpus_per_replica is not None else tp * pp
        if gpus % tp:
            raise _Fail(f"tensor_parallel_size {tp} does not divide gpus_per_replica {gpus}.",
                        f"make gpus_per_replica a multiple of {tp}, e.g. {tp * pp}.", field="tensor_parallel_size")
        if gpus != tp * pp:
            raise _Fail(f"gpus_per_replica {gpus} != tensor_parallel_size {tp} x pipeline_parallel_size {pp}.",
                        f"set gpus_per_replica to {tp * pp}, or change the parallel sizes to match.",
                        field="gpus_per_replica")
        self.gpus_per_replica = gpus

        if acc.key == "CPU":
            if m.needs_gpu:
                raise _Fail(f"{m.key} needs a GPU (MXFP4 MoE kernels, ~{m.min_vram_gb:g} GB of weights in VRAM).",
                            "pick a GPU accelerator (e.g. L4 for gpt-oss-20b), or model: tiny for a CPU run.",
                            field="accelerator")
            if self.target is Target.anyscale:
                raise _Fail("the Anyscale target serves on GPUs.", "pick a GPU accelerator such as L4.",
                            field="accelerator")
        self._check_engine_args()
        if acc.key != "CPU":
            from ops import capacity  # local import: capacity imports the catalog only

            fit = capacity.check_fit(m, acc, tp=tp, pp=pp, max_model_len=self.max_model_len,
                                     util=self.gpu_memory_utilization,
                                     max_num_batched_tokens=self.engine_args.get("max_num_batched_tokens"),
                                     max_num_seqs=self.engine_args.get("max_num_seqs"),
                                     max_cudagraph_capture_size=self.engine_args.get("max_cudagraph_capture_size"))
            if not fit.fits:
                raise _Fail(fit.reason, fit.fix, field="accelerator")

        if self.aws.instance_type is not None:
            it = catalog.INSTANCE_TYPES.get(self.aws.instance_type)
            if it is None:
                gpu_kinds = ", ".join(sorted({i.name for i in catalog.instances_for(acc.key)})) or "none"
                raise _Fail(f"{self.aws.instance_type!r} is not a GPU instance type in the catalog.",
                            f"use one with {acc.key} GPUs: {gpu_kinds}.", field="aws.instance_type")
            if acc.key != "CPU" and it.accelerator != acc.key:
                raise _Fail(f"{it.name} carries {it.accelerator} GPUs, not {acc.key}.",
                            f"set accelerator: {it.accelerator}, or an instance type with {acc.key} GPUs "
                            f"({', '.join(i.name for i in catalog.instances_for(acc.key)) or 'none in catalog'}).",
                            field="aws.instance_type")
            if it.accelerator != "CPU" and it.gpus < gpus:
                bigger = [i.name for i in catalog.instances_for(it.accelerator, gpus)]
                raise _Fail(f"{it.name} has {it.gpus} GPU(s) but one replica needs {gpus}.",
                            f"use {', '.join(bigger) or 'a larger instance'}, or lower tensor_parallel_size.",
                            field="aws.instance_type")
        return self

    def _check_engine_args(self) -> None:
        """Refuse, before anything starts, an engine argument the spec owns or the vLLM release that will serve
        does not accept (Ray's pin on a cluster, the installed vLLM locally: ops.vllm_releases.default_version)."""
        from ops import vllm_releases

        owned = {"max_model_len": "max_model_len", "tensor_parallel_size": "tensor_parallel_size",
                 "pipeline_parallel_size": "pipeline_parallel_size", "gpu_memory_utilization": "gpu_memory_utilization",
                 "model": "model_source", "served_model_name": "model_id"}
        version = vllm_releases.default_version()[0]
        for key in self.engine_args:
            if key in owned:
                raise _Fail(f"engine_args.{key} is set by the spec itself.", f"set the spec field {owned[key]} "
                            "instead, and remove it from engine_args.", field=f"engine_args.{key}")
            refused = vllm_releases.refusal(key, version)
            if refused:
                raise _Fail(f"engine_args.{key} is {refused[0]}, the release that serves this deployment.",
                            refused[1], field=f"engine_args.{key}")

    # -- derived values, read by infra/, app/ and ops/ --------------------------------------------------
    @property
    def model_info(self) -> catalog.ModelInfo:
        return catalog.model(self.model)

    @property
    def accelerator_info(self) -> catalog.AcceleratorInfo:
        return catalog.accelerator(self.accelerator)

    @property
    def resolved_model_source(self) -> str | None:
        """Where the weights come from: explicit source, else the hub id (ModelScope mirror when asked)."""
        if self.model_source:
            return self.model_source
        m = self.model_info
        return m.modelscope_id if self.use_modelscope else m.hf_id

    @property
    def instance_type(self) -> catalog.InstanceType | None:
        """The worker instance: the spec's, else the cheapest catalog one that holds one replica (on a CPU cluster,
    the cheapest CPU instance; a local CPU deployment has none)."""
        if self.aws.instance_type:
            return catalog.INSTANCE_TYPES[self.aws.instance_type]
        if self.accelerator == "CPU" and self.target is not Target.cluster:
            return None
        options = catalog.instances_for(self.accelerator, self.gpus_per_replica or 1)
        return options[0] if options else None

    @property
    def attention_backend(self) -> str | None:
        """vLLM attention backend for gpt-oss: Triton on GPUs without FlashAttention 3 sinks (non-Hopper)."""
        acc = self.accelerator_info
        if acc.key == "CPU" or acc.fa3_sinks:
            return None
        return "TRITON_ATTN"

    def resource_tags(self, stack: str) -> dict[str, str]:
        """Tags every taggable cloud resource carries; the orphan check searches by them."""
        tags = {"project": "gpt-oss-ops", "stack": stack, "model": self.model, "owner": self.owner,
                "ttl": f"{self.ttl_hours:g}h" if self.ttl_hours else "none"}
        tags.update(self.tags)
        return tags


# ------------------------------------------------------------------------------------------ resolve

FIELD_NAMES = set(DeploymentSpec.model_fields) | {"preset"}


@dataclass
class Resolved:
    spec: DeploymentSpec
    provenance: dict[str, str]  # dotted field path -> "default" | "preset:X" | "file:PATH" | "flag:--x"

    def rows(self) -> list[tuple[str, Any, str]]:
        """(field, value, source) for every leaf of the resolved spec."""
        data = self.spec.model_dump(mode="json")
        defaults = dict(_leaves(DeploymentSpec.model_construct().model_dump(mode="json")))
        out = []
        for path, value in _leaves(data):
            source = self.provenance.get(path)
            if source is None:
                source = "derived" if path in defaults and defaults[path] != value else "default"
            out.append((path, value, source))
        return out


def _leaves(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        out = []
        for k, v in data.items():
            out.extend(_leaves(v, f"{prefix}.{k}" if prefix else k))
        return out
    return [(prefix, data)]


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a spec YAML file; malformed YAML is reported with its line and column."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SpecError([Problem("file", f"{p} does not exist.", "pass the path of a spec YAML file.")])
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise SpecError([Problem("file", f"{p}: malformed YAML at {where}: {e.problem or e}.",
                                 "fix the YAML syntax there (indentation, a missing ':' or quote).")], str(p))
    except yaml.YAMLError as e:
        raise SpecError([Problem("file", f"{p}: malformed YAML: {e}.", "fix the YAML syntax.")], str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError([Problem("file", f"{p}: the top level is a {type(data).__name__}, not a mapping.",
                                 "write the spec as 'field: value' lines, e.g. 'model: gpt-oss-20b'.")], str(p))
    return data


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`--set a.b=value` pairs into a nested dict (values parsed as YAML scalars: 2, true, [a, b])."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SpecError([Problem("--set", f"{pair!r} has no '='.", "write --set field=value, e.g. --set replicas.max=4.")])
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _put(out, key.strip(), value)
    return out


def _put(d: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise SpecError([Problem(dotted, "is set both as a value and as a group.", "set only one of them.")])
    d[parts[-1]] = value


def _merge(base: dict, layer: dict, source: str, prov: dict[str, str], prefix: str = "") -> None:
    """Merge `layer` into `base` (copying, so presets and callers' dicts are never mutated), recording the
    source of every leaf it sets."""
    layer = copy.deepcopy(layer)
    for k, v in layer.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "tags":
            _merge(base[k], v, source, prov, path)
        else:
            base[k] = v
            for sub, _ in _leaves(v, path) if isinstance(v, dict) else [(path, v)]:
                prov[sub] = source
            prov[path] = source


def resolve(preset: str | None = None, file: str | Path | None = None, flags: dict[str, Any] | None = None,
            file_data: dict[str, Any] | None = None, file_label: str | None = None) -> Resolved:
    """Resolve a spec from its layers, lowest first: defaults -> preset -> stack config file -> CLI flags.

    The preset comes from the `preset` argument, else from the file's `preset:` key, else the embedded default
    (the tiny model on the local target). Raises SpecError naming every bad field and its fix.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    data_file: dict[str, Any] = {}
    label = file_label
    if file is not None:
        data_file = load_spec_file(file)
        label = label or f"file:{file}"
    elif file_data is not None:
        data_file = dict(file_data)
        label = label or "file"
    source = str(file) if file is not None else None

    preset_name = preset or flags.pop("preset", None) or data_file.get("preset") or catalog.DEFAULT_PRESET
    flags.pop("preset", None)
    data_file = {k: v for k, v in data_file.items() if k != "preset"}
    preset_key = catalog.PRESET_ALIASES.get(preset_name, preset_name)
    if preset_key not in catalog.PRESETS:
        raise SpecError([Problem("preset", f"unknown preset {preset_name!r}.",
                                 f"use one of {', '.join(catalog.PRESETS)}{_did_you_mean(preset_name, catalog.PRESETS)}.")],
                        source)

    merged: dict[str, Any] = {}
    prov: dict[str, str] = {}
    problems = _unknown_fields(data_file, "") + _unknown_fields(flags, "")
    if problems:
        raise SpecError(problems, source)
    _merge(merged, catalog.PRESETS[preset_key], f"preset:{preset_key}", prov)
    _merge(merged, data_file, label or "file", prov)
    _merge(merged, flags, "flag", prov)
    for path in list(prov):
        if prov[path] == "flag":
            prov[path] = "flag:--" + path.replace("_", "-") if "." not in path else f"flag:--set {path}"
    spec = validate(merged, source)
    return Resolved(spec, prov)


def validate(data: dict[str, Any], source: str | None = None) -> DeploymentSpec:
    """Validate raw spec data; every pydantic error becomes a Problem with the field and a fix."""
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError([_problem(err) for err in e.errors()], source) from None


def _problem(err: dict[str, Any]) -> Problem:
    loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "spec"
    msg = str(err.get("msg", ""))
    ctx = err.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, _Fail):
        return Problem(inner.field or loc, inner.message, inner.fix)
    etype = err.get("type", "")
    if etype == "extra_forbidden":
        name = loc.rsplit(".", 1)[-1]
        return Problem(loc, "is not a spec field.", f"remove it or fix the spelling{_did_you_mean(name, FIELD_NAMES)}.")
    if etype == "enum":
        expected = ctx.get("expected", "")
        return Problem(loc, f"{err.get('input')!r} is not allowed.", f"use one of {expected}.")
    if etype == "literal_error":
        return Problem(loc, f"{err.get('input')!r} is not allowed.", f"use one of {ctx.get('expected', '')}.")
    if etype in ("int_parsing", "int_type", "int_from_float"):
        return Problem(loc, f"{err.get('input')!r} is not a whole number.", "write digits only, e.g. 32768.")
    if etype in ("float_parsing", "float_type"):
        return Problem(loc, f"{err.get('input')!r} is not a number.", "write a number, e.g. 0.9.")
    if etype in ("bool_parsing", "bool_type"):
        return Problem(loc, f"{err.get('input')!r} is not true or false.", "write true or false.")
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {k: v for k, v in ctx.items()}
        return Problem(loc, f"{err.get('input')!r} is out of range ({msg.lower()}).",
                       f"use a value that is {msg.lower().replace('input should be ', '')} ({bound}).")
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return Problem(loc, f"{err.get('input')!r} should be a mapping.", "write it as nested 'key: value' lines.")
    if etype in ("list_type",):
        return Problem(loc, f"{err.get('input')!r} should be a list.", "write it as a YAML list, e.g. [203.0.113.0/24].")
    if etype in ("string_type",):
        return Problem(loc, f"{err.get('input')!r} should be text.", "quote the value.")
    msg = msg.removeprefix("Value error, ")
    return Problem(loc, msg + ("" if msg.endswith(".") else "."), "see `ops spec show --help` for the field's format.")


def _unknown_fields(data: dict[str, Any], prefix: str) -> list[Problem]:
    problems = []
    for k in data:
        if prefix == "" and k not in FIELD_NAMES:
            problems.append(Problem(k, "is not a spec field.", f"remove it or fix the spelling{_did_you_mean(k, FIELD_NAMES)}."))
    return problems


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
