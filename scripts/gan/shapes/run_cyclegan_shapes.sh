#!/usr/bin/env bash
# bash scripts/gan/shapes/run_cyclegan_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/gan/shapes/cyclegan_shapes.yaml
WORK_SUBDIR=gan/shapes/cyclegan
prepare_data() {  # the built-in data (and its scorer): generated once, deterministic (seed 0)
  local root="${TORCHCV_GAN_SHAPES_UNPAIRED:-data/gan_shapes_unpaired}"
  [ -f "$root/scorer.pth" ] || "$PYTHON" datasets/generate_shapes_gan.py --kind unpaired --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
