#!/usr/bin/env bash
# bash scripts/seg/voc/run_lraspp_mobilenet_v3_large_voc.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/seg/voc/lraspp_mobilenet_v3_large_voc.yaml
WORK_SUBDIR=seg/voc/lraspp_mobilenet_v3_large
# data: data.root=PATH/VOC2012 or TORCHCV_VOC=PATH
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
