#!/usr/bin/env bash
# bash scripts/det/pennfudan/run_maskrcnn_resnet50_fpn_pennfudan.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/det/pennfudan/maskrcnn_resnet50_fpn_pennfudan.yaml
WORK_SUBDIR=det/pennfudan/maskrcnn_resnet50_fpn
prepare_data() {
  local root="${TORCHCV_PENNFUDAN:-data/PennFudanPed}"
  [ -d "$root/PedMasks" ] || { echo "PennFudanPed not found at $root (set TORCHCV_PENNFUDAN)" >&2; exit 1; }
  [ -f "$root/annotations/instances_test.json" ] || "$PYTHON" datasets/pennfudan2coco.py "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
