#!/usr/bin/env bash
# dfnet_v1 on ImageNet-layout data: TORCHCV_IMAGENET=/path/to/imagenet (train/ and val/ class folders).
#   bash scripts/cls/imagenet/run_dfnet_v1_imagenet.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/imagenet/dfnet_v1_imagenet.yaml
WORK_SUBDIR=cls/imagenet/dfnet_v1
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
