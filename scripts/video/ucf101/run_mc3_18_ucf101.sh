#!/usr/bin/env bash
# mc3_18 on UCF101 split 1 (${TORCHCV_UCF101:-data/ucf101}/{UCF-101,ucfTrainTestlist}); fine-tune from
# Kinetics weights with model.pretrained=PATH.
#   bash scripts/video/ucf101/run_mc3_18_ucf101.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/video/ucf101/mc3_18_ucf101.yaml
WORK_SUBDIR=video/ucf101/mc3_18
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
