#!/usr/bin/env bash
# openpose_vgg19_coco (TORCHCV_COCO=/path/to/the/data).
#   bash scripts/pose/coco/run_openpose_coco.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/coco/openpose_vgg19_coco.yaml
WORK_SUBDIR=pose/coco/openpose_vgg19
prepare_data() {
  local root="${TORCHCV_COCO:-data/coco}"
  [ -f "$root/annotations/person_keypoints_val2017.json" ] || { echo "$root/annotations/person_keypoints_val2017.json not found (set TORCHCV_COCO): download train2017/, val2017/ and annotations/ (configs/_base_/datasets/pose_coco_openpose.yaml)" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
