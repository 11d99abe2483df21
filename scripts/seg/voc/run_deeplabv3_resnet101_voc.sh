#!/usr/bin/env bash
# bash scripts/seg/voc/run_deeplabv3_resnet101_voc.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/voc/deeplabv3_resnet101_voc.yaml
WORK_SUBDIR=seg/voc/deeplabv3_resnet101
# data: data.root=PATH/VOC2012 or TORCHCV_VOC=PATH
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
