#!/usr/bin/env bash
# bash scripts/gan/horse2zebra/run_cyclegan_horse2zebra.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/gan/horse2zebra/cyclegan_horse2zebra.yaml
WORK_SUBDIR=gan/horse2zebra/cyclegan
# data: the CycleGAN horse2zebra download under data/horse2zebra (or TORCHCV_HORSE2ZEBRA)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
