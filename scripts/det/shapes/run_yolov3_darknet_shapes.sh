#!/usr/bin/env bash
# bash scripts/det/shapes/run_yolov3_darknet_shapes.sh train|resume|val|test [TAG] [key=value ...]
CONFIG=configs/det/shapes/yolov3_darknet_shapes.yaml
WORK_SUBDIR=det/shapes/yolov3_darknet
prepare_data() {  # the built-in data (deterministic, seed 0), converted once to the YOLO layout
  local coco="${TORCHCV_SHAPES_DET:-data/shapes_det}" yolo="${TORCHCV_SHAPES_DET_YOLO:-data/shapes_det_yolo}"
  [ -f "$coco/annotations/instances_val.json" ] || "$PYTHON" datasets/generate_shapes_det.py --out "$coco"
  if [ ! -f "$yolo/classes.names" ]; then
    for split in train val; do
      "$PYTHON" datasets/coco2yolo.py --img-dir "$coco/$split" --ann-file "$coco/annotations/instances_$split.json" \
        --out "$yolo" --split "$split"
    done
  fi
}
source "$(dirname "${BASH_SOURCE[0]}")/../../common.sh"
run_main "$@"
