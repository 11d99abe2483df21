#!/usr/bin/env bash
# openpose_vgg19_mpii (TORCHCV_MPII=/path/to/the/data; convert with datasets/mpii2coco.py first).
#   bash scripts/pose/mpii/run_openpose_mpii.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/mpii/openpose_vgg19_mpii.yaml
WORK_SUBDIR=pose/mpii/openpose_vgg19
prepare_data() {
  local root="${TORCHCV_MPII:-data/mpii}"
  [ -f "$root/annotations/person_keypoints_mpii_val.json" ] || { echo "$root/annotations/person_keypoints_mpii_val.json not found (set TORCHCV_MPII): see the comments of configs/_base_/datasets/pose_mpii_openpose.yaml for how to write it" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
