#!/usr/bin/env bash
# Keypoint R-CNN (ShuffleNetV2 FPN) on the built-in stick figures (generated on first use).
#   bash scripts/pose/shapes/run_keypointrcnn_shufflenet_fpn_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/shapes/keypointrcnn_shufflenet_fpn_shapes.yaml
WORK_SUBDIR=pose/shapes/keypointrcnn_shufflenet_fpn
prepare_data() {  # deterministic, seed 0
  local root="${TORCHCV_POSE_SHAPES:-data/pose_shapes}"
  [ -f "$root/annotations/person_keypoints_val.json" ] || "$PYTHON" datasets/generate_stick_figures.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
