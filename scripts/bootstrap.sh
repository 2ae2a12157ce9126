#!/usr/bin/env bash
# Installs the system packages Inland's build and tests need on a fresh Debian machine
# (a no-op when they are there). Rust, Java 17 and Maven are expected on the machine.
set -euo pipefail

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc g++)
# rdkafka builds its bundled librdkafka against these (TLS/SASL to external brokers, zlib).
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)

if ((${#need[@]})); then
  echo "bootstrap: installing ${need[*]}" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

for tool in cargo java mvn; do
  command -v "$tool" >/dev/null || { echo "bootstrap: $tool is missing: install it first (see README)" >&2; exit 1; }
done
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
