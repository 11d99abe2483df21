#!/usr/bin/env bash
# r3d_18 on Kinetics-400 (videos in ${TORCHCV_KINETICS400:-data/kinetics400}/{train,val}/<class>/).
#   bash scripts/video/kinetics400/run_r3d_18_kinetics400.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/video/kinetics400/r3d_18_kinetics400.yaml
WORK_SUBDIR=video/kinetics400/r3d_18
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
