#!/usr/bin/env bash
# System packages the test suite runs for real: sshd for the cluster target, Prometheus for dashboards,
# cloud-init's schema validator and shellcheck for the user-data, iproute2 for the network-namespace hosts;
# for the production-path rehearsal, Docker (docker.io: each node's daemon runs inside the node, never with the
# host's firewall flags), a registry (docker-registry), mmdebstrap for the base images (Docker Hub is not
# reachable) and systemd-nspawn (systemd-container) to boot the nodes, iptables for their security groups,
# dnsmasq (dnsmasq-base) for the VPC resolver that gives instances their EC2 names.
# Installs only what is missing; needs root (or sudo).
set -euo pipefail

packages=(openssh-server openssh-client iproute2 prometheus cloud-init shellcheck procps curl
          docker.io docker-registry mmdebstrap systemd-container iptables dnsmasq-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends keeps cloud-init and prometheus from pulling desktop-sized dependency trees;
# policy-rc.d stops the packages from starting their own daemons (tests start what they need on loopback).
printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
$sudo chmod +x /usr/sbin/policy-rc.d
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
$sudo rm -f /usr/sbin/policy-rc.d
