#!/usr/bin/env bash
# cpm_coco (TORCHCV_COCO=/path/to/the/data).
#   bash scripts/pose/coco/run_cpm_coco.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/coco/cpm_coco.yaml
WORK_SUBDIR=pose/coco/cpm
prepare_data() {
  local root="${TORCHCV_COCO:-data/coco}"
  [ -f "$root/annotations/crops_val2017.json" ] || { echo "$root/annotations/crops_val2017.json not found (set TORCHCV_COCO): see the comments of configs/_base_/datasets/pose_coco_crops.yaml for how to write it" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
