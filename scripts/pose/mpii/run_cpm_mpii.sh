#!/usr/bin/env bash
# cpm_mpii (TORCHCV_MPII=/path/to/the/data).
#   bash scripts/pose/mpii/run_cpm_mpii.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/mpii/cpm_mpii.yaml
WORK_SUBDIR=pose/mpii/cpm
prepare_data() {
  local root="${TORCHCV_MPII:-data/mpii}"
  [ -f "$root/annotations/mpii_val.json" ] || { echo "$root/annotations/mpii_val.json not found (set TORCHCV_MPII): see configs/_base_/datasets/pose_mpii_crops.yaml for the layout" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
