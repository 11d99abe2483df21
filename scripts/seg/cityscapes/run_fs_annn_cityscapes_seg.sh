#!/usr/bin/env bash
# bash scripts/seg/cityscapes/run_fs_annn_cityscapes_seg.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/cityscapes/ann_resnet101_cityscapes.yaml
WORK_SUBDIR=seg/cityscapes/ann_resnet101
# TorchCV's ANN (asymmetric non-local, ResNet-101, output stride 8) on Cityscapes fine, the paper's recipe.
# data: data.root=PATH or TORCHCV_CITYSCAPES=PATH (leftImg8bit/, gtFine/)
# ImageNet weights: torchvision://ResNet101_Weights.IMAGENET1K_V1 from the torch hub cache (or model.backbone.pretrained=PATH)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
