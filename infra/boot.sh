#!/usr/bin/env bash
# Boot one gpt-oss-ops Ray node: secrets from SSM, verified encodings, the serving image, the weights on local
# disk, Ray in the serving image, joined. Settings come from /etc/gpt-oss/boot.env (rendered from the deployment
# spec); secrets are never in user-data: they are read here, at boot, from SSM Parameter Store into a root-only
# tmpfs file.
#
# systemd runs this script (gpt-oss-boot.service, Restart=on-failure) until it succeeds. Every step first checks
# what is already done, so a re-run resumes; /var/lib/gpt-oss/status.json says where the boot is (or why it
# failed) and /var/lib/gpt-oss/ready appears once Ray on this node has joined the cluster. After MAX_ATTEMPTS
# failed runs the node marks itself unhealthy through the Auto Scaling API (a worker is then replaced) and
# systemd stops retrying.
# Each step is a function; sourcing the file defines them without running anything (the tests do that).
set -euo pipefail

SECRETS=/run/gpt-oss/secrets.env
STATE_DIR=/var/lib/gpt-oss
# Exit status that tells systemd not to restart (RestartPreventExitStatus in the unit).
GAVE_UP=75

log() { echo "gpt-oss-boot: $*" >&2; }

ensure_aws_cli() {
  if ! command -v aws > /dev/null; then
    apt-get update -qq && apt-get install -y -qq awscli
  fi
}

# IMDSv2 only (the launch template requires tokens): a session token first, then the metadata.
imds() {
  local token
  token="$(curl -fsS --retry 3 -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')"
  curl -fsS --retry 3 -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/meta-data/$1"
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

# Where this boot stands, for operators (`ops status`, `ops deploy` wait on it) and for the next attempt.
set_status() {
  local state="$1" step="$2" reason="${3:-}"
  install -d -m 0755 "$STATE_DIR"
  python3 - "$STATE_DIR/status.json" "$state" "$step" "$reason" "${ATTEMPT:-0}" "${INSTANCE_ID:-}" <<'PY'
import json, os, sys, time
path, state, step, reason, attempt, instance = sys.argv[1:7]
try:
    with open(path) as f:
        before = json.load(f)
except (OSError, ValueError):
    before = {}
# When each step of this attempt began (seconds since the epoch), for operators and the boot benchmark.
timeline = before.get("timeline", []) if before.get("attempt") == int(attempt) else []
if not timeline or timeline[-1]["step"] != step:
    timeline.append({"step": step, "at": round(time.time(), 3)})
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump({"state": state, "step": step, "reason": reason, "attempt": int(attempt), "instance_id": instance,
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timeline": timeline}, f)
os.replace(tmp, path)
PY
}

# 1. The API key, the Ray token and the hub token -> a root-only file on tmpfs, handed to the Ray container as
#    environment. Without the Ray token no node starts Ray (token authentication is never off).
load_secrets() {
  local api_key hub_token ray_token
  install -d -m 0700 "$(dirname "$SECRETS")"
  ( umask 077 && : > "$SECRETS.part" )
  if [ "$AUTH_ENABLED" = "true" ]; then
    api_key="$(read_param "$API_KEY_PARAM")"
    if [ -z "$api_key" ]; then
      log "SSM parameter $API_KEY_PARAM is missing; create it: aws ssm put-parameter --type SecureString --name $API_KEY_PARAM --value KEY"
      return 1
    fi
    printf '%s=%s\n' "$API_KEY_ENV" "$api_key" >> "$SECRETS.part"
  fi
  ray_token="$(read_param "$RAY_TOKEN_PARAM")"
  if [ -z "$ray_token" ]; then
    log "SSM parameter $RAY_TOKEN_PARAM (Ray's auth token) is missing; create it: aws ssm put-parameter --type SecureString --name $RAY_TOKEN_PARAM --value \"\$(openssl rand -hex 32)\""
    return 1
  fi
  printf 'RAY_AUTH_MODE=token\nRAY_AUTH_TOKEN=%s\n' "$ray_token" >> "$SECRETS.part"
  hub_token="$(read_param "$HUB_TOKEN_PARAM")"
  if [ -n "$hub_token" ]; then
    printf 'HF_TOKEN=%s\nMODELSCOPE_API_TOKEN=%s\n' "$hub_token" "$hub_token" >> "$SECRETS.part"
  fi
  mv "$SECRETS.part" "$SECRETS"
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
      curl -fsSL --retry 5 --connect-timeout 10 --max-time 300 -o "$dest.part" "$ENCODINGS_URL/$name"
    fi
    if ! printf '%s  %s\n' "$sum" "$dest.part" | sha256sum --check --status; then
      log "$name does not match its pinned SHA-256 $sum; refusing to serve with it"
      rm -f "$dest.part"
      return 1
    fi
    mv "$dest.part" "$dest"
  done
}

# 3. The serving image (a private ECR registry needs a login first); nothing to do when it is already here.
pull_image() {
  local attempt
  if docker image inspect "$IMAGE" > /dev/null 2>&1; then
    return 0
  fi
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

# Where the weights live on this host: the instance-store NVMe the Deep Learning AMI mounts, when the instance
# has one (fast, and the root volume need not hold them), else the root volume. Either way they appear at
# MODELS_ROOT inside the container, the path the Serve config names.
host_models_root() {
  if mountpoint -q "$NVME_DIR" 2> /dev/null; then
    printf '%s/models' "$NVME_DIR"
  else
    printf '%s' "$MODELS_ROOT"
  fi
}

# 4. The weights, once, on local disk (workers): the stack bucket's mirror when it holds a checkpoint, else the
#    hub, downloading only what vLLM loads (not the original/ and metal/ copies). Written by the image's user
#    (IMAGE_UID), who owns the directory, so the container can write and read it.
fetch_weights() {
  local root dir
  root="$(host_models_root)"
  dir="$root/$MODEL"
  [ -f "$dir/.complete" ] && return 0
  install -d -m 0755 -o "$IMAGE_UID" -g "$IMAGE_GID" "$root" "$dir"
  if [ -n "$WEIGHTS_S3" ] && aws s3 ls "$WEIGHTS_S3/config.json" > /dev/null 2>&1; then
    log "weights from $WEIGHTS_S3"
    aws s3 sync --only-show-errors "$WEIGHTS_S3" "$dir"
    chown -R "$IMAGE_UID:$IMAGE_GID" "$dir"
  elif [ -n "$WEIGHTS_S3_REQUIRED" ]; then
    log "no checkpoint at $WEIGHTS_S3 (no config.json there, or the bucket cannot be read); upload it: aws s3 sync DIR $WEIGHTS_S3/"
    return 1
  elif [ "$USE_MODELSCOPE" = "true" ]; then
    log "weights from ModelScope $MODELSCOPE_ID"
    docker run --rm --network host -v "$root:$root" --entrypoint python "$IMAGE" \
      -m pip install --quiet --target "$root/.modelscope" modelscope
    docker run --rm --network host -v "$root:$root" --env-file "$SECRETS" -e "PYTHONPATH=$root/.modelscope" \
      --entrypoint python "$IMAGE" -m modelscope.cli.cli download --model "$MODELSCOPE_ID" --local_dir "$dir" \
      "${HUB_EXCLUDE_ARGS[@]}"
  else
    log "weights from the Hugging Face Hub $HF_ID"
    docker run --rm --network host -v "$root:$root" --env-file "$SECRETS" --entrypoint hf "$IMAGE" \
      download "$HF_ID" --local-dir "$dir" "${HUB_EXCLUDE_ARGS[@]}"
  fi
  [ -f "$dir/config.json" ] || { log "no config.json in $dir after the download"; return 1; }
  touch "$dir/.complete"
  chown "$IMAGE_UID:$IMAGE_GID" "$dir/.complete"
}

# 5. Ray in the serving image, every port pinned (the security group names them), token authentication on,
#    logs to CloudWatch. Host paths the tools use (models, encodings, the operator's remote dir) appear at the
#    same paths inside; Ray's temp dir is owned by the image's user. A running container is left alone.
start_ray() {
  local node_ip var
  if [ "$(docker inspect -f '{{.State.Running}}' ray 2> /dev/null)" = "true" ]; then
    return 0
  fi
  node_ip="$(imds local-ipv4)"
  install -d -m 0755 -o "$OPERATOR_USER" -g "$OPERATOR_USER" "$REMOTE_DIR"
  install -d -m 0755 -o "$IMAGE_UID" -g "$IMAGE_GID" "$STATE_DIR/ray"
  local run_flags=(--detach --name ray --restart unless-stopped --network host --ipc host
    --log-driver awslogs --log-opt "awslogs-region=$REGION" --log-opt "awslogs-group=$LOG_GROUP"
    --log-opt "awslogs-stream=$INSTANCE_ID/ray"
    -v "$STATE_DIR/ray:/tmp/ray" -v "$ENCODINGS_DIR:$ENCODINGS_DIR:ro" -v "$(host_models_root):$MODELS_ROOT:ro"
    -v "$REMOTE_DIR:$REMOTE_DIR"
    --env-file "$SECRETS" -e "TIKTOKEN_ENCODINGS_BASE=$ENCODINGS_DIR" -e RAY_USAGE_STATS_ENABLED=0)
  # A private AWS endpoint configured for this host (VPC endpoints, FIPS, a test stand-in) applies to the
  # container too: Ray fetches the app's code from the stack bucket, and the log driver writes to CloudWatch.
  for var in AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_CA_BUNDLE; do
    if [ -n "${!var:-}" ]; then
      run_flags+=(-e "$var")
    fi
  done
  if [ -n "${AWS_ENDPOINT_URL_LOGS:-${AWS_ENDPOINT_URL:-}}" ]; then
    run_flags+=(--log-opt "awslogs-endpoint=${AWS_ENDPOINT_URL_LOGS:-$AWS_ENDPOINT_URL}")
  fi
  if [ "$ROLE" = "worker" ] && [ "$GPUS" != "0" ]; then
    run_flags+=(--gpus all)
  fi
  if [ "$ROLE" = "head" ]; then
    # The dashboard embeds Grafana and queries Prometheus (`ops dashboards --target cluster` runs both).
    run_flags+=(-e "RAY_GRAFANA_HOST=http://127.0.0.1:$GRAFANA_PORT"
      -e "RAY_GRAFANA_IFRAME_HOST=http://localhost:$GRAFANA_PORT"
      -e "RAY_PROMETHEUS_HOST=http://127.0.0.1:$PROMETHEUS_PORT")
  fi
  docker rm --force ray > /dev/null 2>&1 || true
  docker run "${run_flags[@]}" "$IMAGE" ray start "${RAY_START_ARGS[@]}" "--node-ip-address=$node_ip"
}

# 6. Wait until Ray on this node is ALIVE in the cluster (the head's GCS lists it), then leave the marker.
wait_joined() {
  local node_ip deadline
  node_ip="$(imds local-ipv4)"
  deadline=$((SECONDS + JOIN_TIMEOUT_S))
  until docker exec ray python - "$node_ip" > /dev/null 2>&1 <<'PY'
import sys
import ray
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == sys.argv[1]]
sys.exit(0 if alive else 1)
PY
  do
    if [ "$(docker inspect -f '{{.State.Running}}' ray 2> /dev/null)" != "true" ]; then
      log "the Ray container stopped: $(docker logs --tail 5 ray 2>&1 | tr '\n' ' ')"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "Ray on $node_ip did not join the cluster at ${HEAD_ADDRESS:-this head} within ${JOIN_TIMEOUT_S}s"
      return 1
    fi
    sleep 3
  done
  printf '{"node_ip": "%s", "role": "%s", "instance_id": "%s"}\n' "$node_ip" "$ROLE" "$INSTANCE_ID" > "$STATE_DIR/ready"
}

# 7. `ray`, `serve` and `gpt-oss-python` on the host run inside the node's Ray container, so operators' tools
#    (the cluster target over SSH or SSM) see one Ray and the image's Python; the operator user may use Docker.
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

# After MAX_ATTEMPTS failed boots: a worker tells its Auto Scaling group it is unhealthy (the group replaces
# it); the head, which no group replaces, stays up with the reason in its status for the operator. The status
# says gave-up only once that is done, so whoever reads it finds the group already told.
give_up() {
  local reason="$1"
  trap - EXIT
  if [ "$ROLE" = "worker" ] && [ -n "${INSTANCE_ID:-}" ]; then
    if aws autoscaling set-instance-health --instance-id "$INSTANCE_ID" --health-status Unhealthy \
        --no-should-respect-grace-period; then
      log "marked $INSTANCE_ID Unhealthy in its Auto Scaling group after $ATTEMPT failed boots: $reason"
    else
      log "could not mark $INSTANCE_ID Unhealthy; stop it by hand: aws ec2 terminate-instances --instance-ids $INSTANCE_ID"
    fi
  fi
  set_status gave-up "$STEP" "$reason"
  log "giving up after $ATTEMPT attempts at step '$STEP': $reason"
  exit "$GAVE_UP"
}

STEP=start
BOOT_LOG="$STATE_DIR/boot.log"

# Steps run with `set -e` in force (a step called from an `if` would run with it ignored), so the first failing
# command ends the run; this trap then records the step and the last error line, and gives up for good after
# MAX_ATTEMPTS runs.
on_exit() {
  local rc=$? reason
  if [ "$rc" -eq 0 ] || [ "$rc" -eq "$GAVE_UP" ]; then
    return
  fi
  sleep 0.3  # let tee write the last lines
  reason="$(grep -v '^[[:space:]]*$' "$BOOT_LOG" 2> /dev/null | tail -n 1 | cut -c1-500)"
  reason="${reason:-step $STEP exited with $rc}"
  log "step $STEP failed (attempt $ATTEMPT of $MAX_ATTEMPTS): $reason"
  if [ "$ATTEMPT" -ge "$MAX_ATTEMPTS" ]; then
    give_up "$reason"
  fi
  set_status failed "$STEP" "$reason"
}

run_step() {
  STEP="$1"
  shift
  set_status booting "$STEP"
  "$@"
}

main() {
  # shellcheck source=/dev/null
  source "${GPT_OSS_BOOT_ENV:-/etc/gpt-oss/boot.env}"
  export AWS_DEFAULT_REGION="$REGION"
  install -d -m 0755 "$STATE_DIR"
  ATTEMPT=$(( $(cat "$STATE_DIR/attempts" 2> /dev/null || echo 0) + 1 ))
  echo "$ATTEMPT" > "$STATE_DIR/attempts"
  rm -f "$STATE_DIR/ready"
  exec 2> >(tee -a "$BOOT_LOG" >&2)
  trap on_exit EXIT
  run_step aws-cli ensure_aws_cli
  STEP=metadata
  INSTANCE_ID="$(imds instance-id)"
  log "boot attempt $ATTEMPT: role=$ROLE instance=$INSTANCE_ID"
  run_step secrets load_secrets
  run_step encodings fetch_encodings
  run_step image pull_image
  if [ "$ROLE" = "worker" ]; then
    run_step weights fetch_weights
  fi
  run_step ray start_ray
  run_step join wait_joined
  run_step host-tools install_host_tools
  echo 0 > "$STATE_DIR/attempts"
  set_status ready complete
  log "node ready: role=$ROLE instance=$INSTANCE_ID"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
