#!/usr/bin/env bash
# keypointrcnn_resnet50_fpn on COCO 2017 person keypoints (TORCHCV_COCO=/path/to/coco).
#   bash scripts/pose/coco/run_keypointrcnn_resnet50_fpn_coco.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/coco/keypointrcnn_resnet50_fpn_coco.yaml
WORK_SUBDIR=pose/coco/keypointrcnn_resnet50_fpn
prepare_data() {
  local root="${TORCHCV_COCO:-data/coco}"
  [ -f "$root/annotations/person_keypoints_val2017.json" ] || { echo "COCO 2017 person keypoints not found under $root (set TORCHCV_COCO): download train2017/, val2017/ and annotations/ first" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
