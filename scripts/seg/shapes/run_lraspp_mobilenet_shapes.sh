#!/usr/bin/env bash
# bash scripts/seg/shapes/run_lraspp_mobilenet_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/shapes/lraspp_mobilenet_v3_large_shapes.yaml
WORK_SUBDIR=seg/shapes/lraspp_mobilenet
prepare_data() {  # the built-in data: generate it once (deterministic, seed 0)
  local root="${TORCHCV_SHAPES_SEG:-data/shapes_seg}"
  [ -f "$root/ImageSets/Segmentation/test.txt" ] || "$PYTHON" datasets/generate_shapes_seg.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
