#!/usr/bin/env bash
# bash scripts/seg/shapes/run_ann_resnet18_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/shapes/ann_resnet18_shapes.yaml
WORK_SUBDIR=seg/shapes/ann_resnet18
prepare_data() {  # the built-in data: generate it once (deterministic, seed 0)
  local root="${TORCHCV_SHAPES_SEG:-data/shapes_seg}"
  [ -f "$root/ImageSets/Segmentation/test.txt" ] || "$PYTHON" datasets/generate_shapes_seg.py --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
