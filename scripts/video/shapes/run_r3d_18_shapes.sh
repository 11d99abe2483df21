#!/usr/bin/env bash
# r3d_18 on the built-in moving-shapes videos (generated on first use).
#   bash scripts/video/shapes/run_r3d_18_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/video/shapes/r3d_18_shapes.yaml
WORK_SUBDIR=video/shapes/r3d_18
prepare_data() {
  local root="${TORCHCV_SHAPES_VIDEO:-data/shapes_video}"
  [ -d "$root" ] || "$PYTHON" datasets/generate_shapes_video.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
