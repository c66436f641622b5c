#!/usr/bin/env bash
# Measure the shipped tiny policy's testbed profile (the README table):
#   pass@1 by number of operations on 1,000 fresh problems (4 samples each, T=1.0), and
#   pass@64 on 6-8 operations (120 fresh problems x 64 samples).
# Usage: scripts/measure_profile.sh [POLICY] [OUT]   (defaults: tiny, runs/profile)
set -euo pipefail
POLICY=${1:-tiny}
OUT=${2:-runs/profile}
BIN=${BIN:-.venv/bin}
"$BIN/rewardlab" sample --policy "$POLICY" --problems 1000 --n 4 --seed 777 \
  --temperature 1.0 --out "$OUT/pass1"
"$BIN/rewardlab" sample --policy "$POLICY" --problems 120 --difficulty 6-8 --n 64 --seed 778 \
  --temperature 1.0 --out "$OUT/pass64"
