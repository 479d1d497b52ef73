#!/usr/bin/env bash
# Tooling only (training the shipped model, regenerating golden fixtures, plots): Debian's
# PyTorch and friends. Not needed to build, run or test engram.
set -euo pipefail
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# libopenblas0-pthread: without it Debian's PyTorch falls back to the reference BLAS (~9x slower).
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch libopenblas0-pthread \
  python3-numpy python3-sentencepiece python3-matplotlib
