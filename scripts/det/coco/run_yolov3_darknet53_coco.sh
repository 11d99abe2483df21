#!/usr/bin/env bash
# bash scripts/det/coco/run_yolov3_darknet53_coco.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/det/coco/yolov3_darknet53_coco.yaml
WORK_SUBDIR=det/coco/yolov3_darknet53
prepare_data() {
  local root="${TORCHCV_COCO:-data/coco}"
  [ -f "$root/annotations/instances_val2017.json" ] || { echo "COCO 2017 not found under $root (set TORCHCV_COCO): download train2017/, val2017/ and annotations/ first" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
