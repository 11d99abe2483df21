#!/usr/bin/env bash
# bash scripts/gan/facades/run_pix2pix_facades.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/gan/facades/pix2pix_facades.yaml
WORK_SUBDIR=gan/facades/pix2pix
# data: the reference's facades download (aligned A|B) under data/facades (or TORCHCV_FACADES)
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
