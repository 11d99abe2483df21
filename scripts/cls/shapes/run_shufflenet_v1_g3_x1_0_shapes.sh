#!/usr/bin/env bash
# shufflenet_v1_g3_x1_0 on the built-in shapes classification data (generated on first use).
#   bash scripts/cls/shapes/run_shufflenet_v1_g3_x1_0_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/shapes/shufflenet_v1_g3_x1_0_shapes.yaml
WORK_SUBDIR=cls/shapes/shufflenet_v1_g3_x1_0
prepare_data() {
  local root="${TORCHCV_SHAPES_CLS:-data/shapes_cls}"
  [ -d "$root" ] || "$PYTHON" datasets/generate_shapes_cls.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
