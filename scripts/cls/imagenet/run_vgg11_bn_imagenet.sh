#!/usr/bin/env bash
# vgg11_bn on ImageNet-layout data: TORCHCV_IMAGENET=/path/to/imagenet (train/ and val/ class folders).
#   bash scripts/cls/imagenet/run_vgg11_bn_imagenet.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/imagenet/vgg11_bn_imagenet.yaml
WORK_SUBDIR=cls/imagenet/vgg11_bn
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
