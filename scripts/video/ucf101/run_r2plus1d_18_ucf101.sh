#!/usr/bin/env bash
# r2plus1d_18 on UCF101 split 1 (${TORCHCV_UCF101:-data/ucf101}/{UCF-101,ucfTrainTestlist}); fine-tune from
# Kinetics weights with model.pretrained=PATH.
#   bash scripts/video/ucf101/run_r2plus1d_18_ucf101.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/video/ucf101/r2plus1d_18_ucf101.yaml
WORK_SUBDIR=video/ucf101/r2plus1d_18
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
