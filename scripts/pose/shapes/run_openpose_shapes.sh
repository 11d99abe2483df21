#!/usr/bin/env bash
# OpenPose (light CPU trunk) on the built-in stick figures (generated on first use).
#   bash scripts/pose/shapes/run_openpose_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/pose/shapes/openpose_light_shapes.yaml
WORK_SUBDIR=pose/shapes/openpose_light
prepare_data() {  # deterministic, seed 0; one generator writes the COCO file and the crops
  local root="${TORCHCV_POSE_SHAPES:-data/pose_shapes}"
  [ -f "$root/annotations/crops_val.json" ] && [ -f "$root/annotations/person_keypoints_val.json" ] || \
    "$PYTHON" datasets/generate_stick_figures.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
