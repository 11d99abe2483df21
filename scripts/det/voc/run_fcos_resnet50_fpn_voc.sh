#!/usr/bin/env bash
# bash scripts/det/voc/run_fcos_resnet50_fpn_voc.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/det/voc/fcos_resnet50_fpn_voc.yaml
WORK_SUBDIR=det/voc/fcos_resnet50_fpn
prepare_data() {
  local root="${TORCHCV_VOC:-data/VOCdevkit/VOC2007}"
  [ -f "$root/ImageSets/Main/trainval.txt" ] || { echo "VOC2007 not found at $root (set TORCHCV_VOC)" >&2; exit 1; }
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
