#!/usr/bin/env bash
# bash scripts/seg/ade20k/run_pspnet_resnet50_ade20k.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/ade20k/pspnet_resnet50_ade20k.yaml
WORK_SUBDIR=seg/ade20k/pspnet_resnet50
# data: data.root=PATH/ADEChallengeData2016 or TORCHCV_ADE20K=PATH
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
