#!/usr/bin/env bash
# Boot one gpt-oss-ops Ray node: secrets from SSM, verified encodings, weights on local disk, Ray in the
# serving image. Settings come from /etc/gpt-oss/boot.env (rendered from the deployment spec); secrets are
# never in user-data: they are read here, at boot, from SSM Parameter Store into a root-only tmpfs file.
# Each step is a function; sourcing the file defines them without running anything (the tests do that).
set -euo pipefail

SECRETS=/run/gpt-oss/secrets.env

log() { echo "gpt-oss-boot: $*" >&2; }

ensure_aws_cli() {
  if ! command -v aws > /dev/null; then
    apt-get update -qq && apt-get install -y -qq awscli
  fi
}

# IMDSv2 only (the launch template requires tokens): a session token first, then the metadata.
imds() {
  local token
  token="$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  curl -fsS -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/meta-data/$1"
}

# Prints a SecureString parameter's value; prints nothing when the parameter does not exist.
read_param() {
  local out
  if out="$(aws ssm get-parameter --name "$1" --with-decryption --query Parameter.Value --output text 2>&1)"; then
    printf '%s' "$out"
  elif [[ "$out" == *ParameterNotFound* ]]; then
    return 0
  else
    log "cannot read SSM parameter $1: $out"
    return 1
  fi
}

# 1. The API key and hub token -> a root-only file on tmpfs, handed to the Ray container as environment.
load_secrets() {
  local api_key hub_token
  install -d -m 0700 "$(dirname "$SECRETS")"
  ( umask 077 && : > "$SECRETS" )
  if [ "$AUTH_ENABLED" = "true" ]; then
    api_key="$(read_param "$API_KEY_PARAM")"
    if [ -z "$api_key" ]; then
      log "SSM parameter $API_KEY_PARAM is missing; create it: aws ssm put-parameter --type SecureString --name $API_KEY_PARAM --value KEY"
      return 1
    fi
    printf '%s=%s\n' "$API_KEY_ENV" "$api_key" >> "$SECRETS"
  fi
  hub_token="$(read_param "$HUB_TOKEN_PARAM")"
  if [ -n "$hub_token" ]; then
    printf 'HF_TOKEN=%s\nMODELSCOPE_API_TOKEN=%s\n' "$hub_token" "$hub_token" >> "$SECRETS"
  fi
}

# 2. The tiktoken encodings, from the stack bucket or the official host, each checked against its pinned
#    SHA-256 before it is moved into place; a mismatch stops the boot and leaves nothing behind.
fetch_encodings() {
  local entry name sum dest
  install -d -m 0755 "$ENCODINGS_DIR"
  for entry in "${ENCODINGS[@]}"; do
    name="${entry%%:*}"
    sum="${entry##*:}"
    dest="$ENCODINGS_DIR/$name"
    if [ -f "$dest" ] && printf '%s  %s\n' "$sum" "$dest" | sha256sum --check --status; then
      continue
    fi
    if [ -n "$BUCKET" ] && aws s3 cp --only-show-errors "s3://$BUCKET/encodings/$name" "$dest.part"; then
      log "$name from s3://$BUCKET/encodings/"
    else
      curl -fsSL --retry 5 -o "$dest.part" "$ENCODINGS_URL/$name"
    fi
    if ! printf '%s  %s\n' "$sum" "$dest.part" | sha256sum --check --status; then
      log "$name does not match its pinned SHA-256 $sum; refusing to serve with it"
      rm -f "$dest.part"
      return 1
    fi
    mv "$dest.part" "$dest"
  done
}

# 3. The serving image (a private ECR registry needs a login first).
pull_image() {
  local attempt
  if [[ "$IMAGE" =~ ^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com ]]; then
    aws ecr get-login-password --region "${BASH_REMATCH[1]}" | docker login --username AWS --password-stdin "${IMAGE%%/*}"
  fi
  for attempt in 1 2 3 4 5; do
    docker pull --quiet "$IMAGE" && return 0
    log "docker pull $IMAGE failed (attempt $attempt)"
    sleep $((attempt * 10))
  done
  return 1
}

# 4. The weights on local disk (GPU workers): the S3 mirror when it holds a checkpoint, else the hub.
fetch_weights() {
  [ -f "$MODEL_DIR/.complete" ] && return 0
  install -d -m 0755 "$MODEL_DIR"
  if [ -n "$WEIGHTS_S3" ] && aws s3 ls "$WEIGHTS_S3/config.json" > /dev/null 2>&1; then
    log "weights from $WEIGHTS_S3"
    aws s3 sync --only-show-errors "$WEIGHTS_S3" "$MODEL_DIR"
  elif [ "$USE_MODELSCOPE" = "true" ]; then
    log "weights from ModelScope $MODELSCOPE_ID"
    docker run --rm -v "$MODELS_ROOT:$MODELS_ROOT" --entrypoint python "$IMAGE" \
      -m pip install --quiet --target "$MODELS_ROOT/.modelscope" modelscope
    docker run --rm -v "$MODELS_ROOT:$MODELS_ROOT" --env-file "$SECRETS" -e "PYTHONPATH=$MODELS_ROOT/.modelscope" \
      --entrypoint python "$IMAGE" -m modelscope.cli.cli download --model "$MODELSCOPE_ID" --local_dir "$MODEL_DIR"
  else
    log "weights from the Hugging Face Hub $HF_ID"
    docker run --rm -v "$MODELS_ROOT:$MODELS_ROOT" --env-file "$SECRETS" --entrypoint hf "$IMAGE" \
      download "$HF_ID" --local-dir "$MODEL_DIR"
  fi
  touch "$MODEL_DIR/.complete"
}

# 5. Ray in the serving image, every port pinned (the security group names them), logs to CloudWatch.
#    Host paths the tools use (models, encodings, the operator's remote dir) appear at the same paths inside.
start_ray() {
  install -d -m 0755 -o "$OPERATOR_USER" -g "$OPERATOR_USER" "$REMOTE_DIR"
  local run_flags=(--detach --name ray --restart unless-stopped --network host --ipc host
    --log-driver awslogs --log-opt "awslogs-region=$REGION" --log-opt "awslogs-group=$LOG_GROUP"
    --log-opt "awslogs-stream=$INSTANCE_ID/ray"
    -v /tmp/ray:/tmp/ray -v "$ENCODINGS_DIR:$ENCODINGS_DIR:ro" -v "$MODELS_ROOT:$MODELS_ROOT:ro"
    -v "$REMOTE_DIR:$REMOTE_DIR"
    --env-file "$SECRETS" -e "TIKTOKEN_ENCODINGS_BASE=$ENCODINGS_DIR" -e RAY_USAGE_STATS_ENABLED=0)
  if [ "$ROLE" = "worker" ]; then
    run_flags+=(--gpus all)
  else
    # The dashboard embeds Grafana and queries Prometheus (`ops dashboards --target cluster` runs both).
    run_flags+=(-e "RAY_GRAFANA_HOST=http://127.0.0.1:$GRAFANA_PORT"
      -e "RAY_GRAFANA_IFRAME_HOST=http://localhost:$GRAFANA_PORT"
      -e "RAY_PROMETHEUS_HOST=http://127.0.0.1:$PROMETHEUS_PORT")
  fi
  docker rm --force ray > /dev/null 2>&1 || true
  docker run "${run_flags[@]}" "$IMAGE" ray start "${RAY_START_ARGS[@]}"
}

# 6. `ray`, `serve` and `gpt-oss-python` on the host run inside the Ray container, so operators' tools (the
#    cluster target over SSH or SSM) see one Ray and the image's Python; the operator user may use Docker.
install_host_tools() {
  local tool
  for tool in ray serve gpt-oss-python; do
    cat > "/usr/local/bin/$tool" <<'WRAPPER'
#!/usr/bin/env bash
# Installed by the gpt-oss-ops boot script: runs this command inside the node's Ray container.
set -euo pipefail
name="$(basename "$0")"
[ "$name" = "gpt-oss-python" ] && name=python
exec docker exec -i -e PYTHONPATH -e RAY_USAGE_STATS_ENABLED -e HF_HUB_OFFLINE -e RAY_ADDRESS ray "$name" "$@"
WRAPPER
    chmod 0755 "/usr/local/bin/$tool"
  done
  usermod -aG docker "$OPERATOR_USER"
}

main() {
  # shellcheck source=/dev/null
  source "${GPT_OSS_BOOT_ENV:-/etc/gpt-oss/boot.env}"
  export AWS_DEFAULT_REGION="$REGION"
  ensure_aws_cli
  INSTANCE_ID="$(imds instance-id)"
  load_secrets
  fetch_encodings
  pull_image
  if [ "$ROLE" = "worker" ]; then
    fetch_weights
  fi
  start_ray
  install_host_tools
  log "node ready: role=$ROLE instance=$INSTANCE_ID"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
