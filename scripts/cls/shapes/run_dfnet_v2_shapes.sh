#!/usr/bin/env bash
# dfnet_v2 on the built-in shapes classification data (generated on first use).
#   bash scripts/cls/shapes/run_dfnet_v2_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/shapes/dfnet_v2_shapes.yaml
WORK_SUBDIR=cls/shapes/dfnet_v2
prepare_data() {
  local root="${TORCHCV_SHAPES_CLS:-data/shapes_cls}"
  [ -d "$root" ] || "$PYTHON" datasets/generate_shapes_cls.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
