#!/usr/bin/env bash
# bash scripts/seg/cityscapes/run_fs_pspnet_cityscapes_seg.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/cityscapes/pspnet_resnet101_cityscapes.yaml
WORK_SUBDIR=seg/cityscapes/pspnet_resnet101
# TorchCV's PSPNet (ResNet-101, output stride 8) on Cityscapes fine.
# data: data.root=PATH or TORCHCV_CITYSCAPES=PATH (leftImg8bit/, gtFine/)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
