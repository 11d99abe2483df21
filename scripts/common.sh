#!/usr/bin/env bash
# Shared body of every run script: scripts/<task>/<dataset>/run_<model>_<dataset>.sh
#
#   bash scripts/<task>/<dataset>/run_<model>_<dataset>.sh MODE [TAG] [key=value ...]
#
# MODE: train | resume | val | test.  TAG (default "default") names the work dir
# work_dirs/<task>/<dataset>/<model>/<TAG>.  key=value pairs override the config.
# PYTHON overrides the interpreter; WORK_ROOT (default work_dirs) moves all work dirs.
#
# Several processes (torchrun, DDP): NGPUS processes on this machine (default 1), and for several
# machines NNODES (default 1) with either NODE_RANK (0..NNODES-1), MASTER_ADDR and MASTER_PORT
# (static rendezvous: run the same command on every node), or RDZV_ENDPOINT=host:port (c10d
# rendezvous; RDZV_ID names the job). Every node needs the data and the work dir at the same path
# (a shared file system, so non-zero ranks can read the checkpoint on resume).
# A run script sets CONFIG, WORK_SUBDIR and optionally defines prepare_data, then calls run_main "$@".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

usage() {
  echo "usage: bash $0 train|resume|val|test [TAG] [key=value ...]" >&2
  exit 2
}

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }

launch() {  # launch SCRIPT ARGS...: plain python, or torchrun for several processes or nodes
  local script="$1"; shift
  local ngpus="${NGPUS:-1}" nnodes="${NNODES:-1}"
  is_count "$ngpus" || { echo "NGPUS='$ngpus': give the number of processes per node (>= 1)" >&2; exit 2; }
  is_count "$nnodes" || { echo "NNODES='$nnodes': give the number of nodes (>= 1)" >&2; exit 2; }
  if [ "$ngpus" -eq 1 ] && [ "$nnodes" -eq 1 ]; then
    "$PYTHON" "$script" "$@"
    return
  fi
  local rdzv=(--standalone)
  if [ -n "${RDZV_ENDPOINT:-}" ]; then
    rdzv=(--rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --rdzv_id="${RDZV_ID:-torchcv}")
  elif [ "$nnodes" -gt 1 ] || [ -n "${MASTER_ADDR:-}" ]; then
    local rank="${NODE_RANK:-}"
    if ! [[ "$rank" =~ ^[0-9]+$ ]] || [ "$rank" -ge "$nnodes" ]; then
      echo "NODE_RANK='$rank': set it to this node's rank, 0..$((nnodes - 1)) (or use RDZV_ENDPOINT)" >&2; exit 2
    fi
    [ -n "${MASTER_ADDR:-}" ] || { echo "NNODES=$nnodes needs MASTER_ADDR (the address of node 0) or RDZV_ENDPOINT" >&2; exit 2; }
    rdzv=(--node_rank="$rank" --master_addr="$MASTER_ADDR" --master_port="${MASTER_PORT:-29500}")
  fi
  "$PYTHON" -m torch.distributed.run --nnodes="$nnodes" "${rdzv[@]}" --nproc_per_node="$ngpus" "$script" "$@"
}

run_main() {
  [ $# -ge 1 ] || usage
  local mode="$1"; shift
  case "$mode" in train|resume|val|test) ;; *) echo "unknown mode '$mode'" >&2; usage ;; esac
  local tag="default"
  if [ $# -ge 1 ] && [[ "$1" != *=* ]]; then tag="$1"; shift; fi
  local work_dir="${WORK_ROOT:-work_dirs}/${WORK_SUBDIR}/${tag}"
  TAG_FOR_MESSAGE="$tag"
  local ckpt=""
  if [ "$mode" = val ] || [ "$mode" = test ]; then
    ckpt="$(pick_checkpoint "$work_dir")" || exit 1
  fi
  if declare -F prepare_data >/dev/null; then prepare_data; fi
  case "$mode" in
    train)  launch tools/train.py "$CONFIG" --work-dir "$work_dir" "$@" ;;
    resume) launch tools/train.py "$CONFIG" --work-dir "$work_dir" --resume "$@" ;;
    val)    launch tools/test.py "$CONFIG" "$ckpt" --work-dir "$work_dir" --split val "$@" ;;
    test)   launch tools/test.py "$CONFIG" "$ckpt" --work-dir "$work_dir" --split test --out-dir "$work_dir/test" "$@" ;;
  esac
}

pick_checkpoint() {  # best.pth if evaluation kept one, else the newest complete checkpoint
  local d="$1/checkpoints"
  if [ -f "$d/best.pth" ]; then echo "$d/best.pth"; return; fi
  if [ -f "$d/last_checkpoint" ]; then echo "$d/$(cat "$d/last_checkpoint")"; return; fi
  echo "error: no checkpoint in $d: run 'train' first (bash $0 train ${TAG_FOR_MESSAGE:-})" >&2
  return 1
}
