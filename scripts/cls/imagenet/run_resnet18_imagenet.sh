#!/usr/bin/env bash
# resnet18 on ImageNet-layout data: TORCHCV_IMAGENET=/path/to/imagenet (train/ and val/ class folders).
#   bash scripts/cls/imagenet/run_resnet18_imagenet.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/imagenet/resnet18_imagenet.yaml
WORK_SUBDIR=cls/imagenet/resnet18
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
