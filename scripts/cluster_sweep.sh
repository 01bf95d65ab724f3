#!/usr/bin/env bash
# Runs a sweep on a Ray cluster's head node:
#   ray submit clusters/aws-gpu.yaml scripts/cluster_sweep.sh -- configs/local.yaml [sweep run flags]
# The spec path is relative to the synced project (~/ctx-sweep). Results go to
# $SWEEP_RESULTS (default ~/ctx-sweep/results): set it to shared storage (NFS) on
# multi-node clusters. WANDB_API_KEY, when set in the head's environment, reaches the
# trial workers through Ray's runtime environment and is never written to disk.
set -euo pipefail
export RAY_AUTH_MODE=token
cd ~/ctx-sweep
spec="$1"; shift
exec sweep run "$spec" --address auto --results "${SWEEP_RESULTS:-$HOME/ctx-sweep/results}" "$@"
