#!/usr/bin/env bash
# bash scripts/seg/cityscapes/run_fcn_resnet101_cityscapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/cityscapes/fcn_resnet101_cityscapes.yaml
WORK_SUBDIR=seg/cityscapes/fcn_resnet101
# data: data.root=PATH or TORCHCV_CITYSCAPES=PATH (leftImg8bit/, gtFine/)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
