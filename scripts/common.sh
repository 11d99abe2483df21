#!/usr/bin/env bash
# Shared body of every run script: scripts/<task>/<dataset>/run_<model>_<dataset>.sh
#
#   bash scripts/<task>/<dataset>/run_<model>_<dataset>.sh MODE [TAG] [key=value ...]
#
# MODE: train | resume | val | test.  TAG (default "default") names the work dir
# work_dirs/<task>/<dataset>/<model>/<TAG>.  key=value pairs override the config.
# NGPUS>1 launches torchrun with that many processes.  PYTHON overrides the interpreter;
# WORK_ROOT (default work_dirs) moves all work dirs.
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

launch() {  # launch SCRIPT ARGS...: plain python, or torchrun when NGPUS>1
  local script="$1"; shift
  if [ "${NGPUS:-1}" -gt 1 ]; then
    "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NGPUS" "$script" "$@"
  else
    "$PYTHON" "$script" "$@"
  fi
}

run_main() {
  [ $# -ge 1 ] || usage
  local mode="$1"; shift
  local tag="default"
  if [ $# -ge 1 ] && [[ "$1" != *=* ]]; then tag="$1"; shift; fi
  local work_dir="${WORK_ROOT:-work_dirs}/${WORK_SUBDIR}/${tag}"
  if declare -F prepare_data >/dev/null; then prepare_data; fi
  case "$mode" in
    train)  launch tools/train.py "$CONFIG" --work-dir "$work_dir" "$@" ;;
    resume) launch tools/train.py "$CONFIG" --work-dir "$work_dir" --resume "$@" ;;
    val)    launch tools/test.py "$CONFIG" "$(pick_checkpoint "$work_dir")" --work-dir "$work_dir" --split val "$@" ;;
    test)   launch tools/test.py "$CONFIG" "$(pick_checkpoint "$work_dir")" --work-dir "$work_dir" --split test \
              --out-dir "$work_dir/test" "$@" ;;
    *) usage ;;
  esac
}

pick_checkpoint() {  # best.pth if evaluation kept one, else the newest complete checkpoint
  local d="$1/checkpoints"
  if [ -f "$d/best.pth" ]; then echo "$d/best.pth"; return; fi
  if [ -f "$d/last_checkpoint" ]; then echo "$d/$(cat "$d/last_checkpoint")"; return; fi
  echo "no checkpoint in $d: run 'train' first" >&2
  exit 1
}
