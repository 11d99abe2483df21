#!/usr/bin/env bash
# bash scripts/gan/facades/run_cyclegan_facades.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/gan/facades/cyclegan_facades.yaml
WORK_SUBDIR=gan/facades/cyclegan
# data: the CycleGAN facades download (trainA/trainB/testA/testB) under data/facades_unpaired (or TORCHCV_FACADES_UNPAIRED)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
