#!/usr/bin/env bash
# bash scripts/gan/shapes/run_pix2pix_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/gan/shapes/pix2pix_shapes.yaml
WORK_SUBDIR=gan/shapes/pix2pix
prepare_data() {  # the built-in data (and its scorer): generated once, deterministic (seed 0)
  local root="${TORCHCV_GAN_SHAPES_PAIRED:-data/gan_shapes_paired}"
  [ -f "$root/scorer.pth" ] || "$PYTHON" datasets/generate_shapes_gan.py --kind paired --out "$root"
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
