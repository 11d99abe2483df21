#!/usr/bin/env bash
# bash scripts/det/shapes/run_retinanet_shufflenet_fpn_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/det/shapes/retinanet_shufflenet_fpn_shapes.yaml
WORK_SUBDIR=det/shapes/retinanet_shufflenet_fpn
prepare_data() {  # the built-in data: generate it once (deterministic, seed 0)
  local root="${TORCHCV_SHAPES_DET:-data/shapes_det}"
  [ -f "$root/annotations/instances_val.json" ] || "$PYTHON" datasets/generate_shapes_det.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
