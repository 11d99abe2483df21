#!/usr/bin/env bash
# mobilenet_v2 on ImageNet-layout data: TORCHCV_IMAGENET=/path/to/imagenet (train/ and val/ class folders).
#   bash scripts/cls/imagenet/run_mobilenet_v2_imagenet.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/imagenet/mobilenet_v2_imagenet.yaml
WORK_SUBDIR=cls/imagenet/mobilenet_v2
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
