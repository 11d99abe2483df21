#!/usr/bin/env bash
# shufflenet_v1_g3_x1_0 on ImageNet-layout data: TORCHCV_IMAGENET=/path/to/imagenet (train/ and val/ class folders).
#   bash scripts/cls/imagenet/run_shufflenet_v1_g3_x1_0_imagenet.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/cls/imagenet/shufflenet_v1_g3_x1_0_imagenet.yaml
WORK_SUBDIR=cls/imagenet/shufflenet_v1_g3_x1_0
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
