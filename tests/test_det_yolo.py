"""YOLOv3: Darknet weight files (written here in Darknet's binary layout), the letterbox, the loss's
assignment and ignore threshold, learning on a toy image, and the YOLO-format dataset with its
bad-input errors."""
import os
import struct

import numpy as np
import pytest
import torch

from torchcv.models.backbones.darknet import Darknet53, darknet_layers, load_darknet_weights, read_darknet_file
from torchcv.models.backbones.features import FeatureBackbone
from torchcv.models.detectors.letterbox import LetterboxTransform
from torchcv.models.detectors.yolov3 import YOLOv3
from torchcv.utils.errors import CheckpointError, ConfigError, DataError, MissingFileError

WIDTH = 0.125  # an eighth of Darknet-53's channels: the layout of yolov3.cfg, small files


def _ch(c):
    return max(8, int(round(c * WIDTH)))


def yolov3_cfg_convs(classes=80):
    """The convolutional layers of yolov3.cfg in file order, as (in, out, size, batch_normalize),
    written out from the .cfg (not from our modules), channels scaled by WIDTH."""
    convs = [(3, _ch(32), 3, True)]
    cin = _ch(32)
    for cout, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):   # layers 1 .. 74
        convs.append((cin, _ch(cout), 3, True))                                # stride-2 conv
        for _ in range(blocks):
            half = _ch(cout) // 2
            convs += [(_ch(cout), half, 1, True), (half, _ch(cout), 3, True)]  # + shortcut
        cin = _ch(cout)
    out = 3 * (5 + classes)
    route_in = [_ch(1024), _ch(512) + _ch(256), _ch(256) + _ch(128)]          # layers 74, 86 (route -1, 61), 98 (-1, 36)
    for i, w in enumerate((512, 256, 128)):
        if i:                                                                  # layers 84 / 96: 1x1 after route -4
            convs.append((_ch(2 * w), _ch(w), 1, True))
        c = route_in[i]
        for _ in range(3):                                                     # 1x1, 3x3, 1x1, 3x3, 1x1, 3x3
            convs += [(c, _ch(w), 1, True), (_ch(w), _ch(2 * w), 3, True)]
            c = _ch(2 * w)
        convs.append((_ch(2 * w), out, 1, False))                              # layers 81 / 93 / 105: linear
    return convs


def write_darknet_file(path, convs, header=(0, 2, 5), seen=32013312):
    """Darknet's layout: int32 major, minor, revision; seen (int64 from version 0.2); then per
    layer [bn beta, gamma, mean, variance | conv bias] and the conv weights. Layer k's values are
    k + 0.001 * (position in the layer), so every tensor can be identified."""
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", *header))
        f.write(struct.pack("<q" if header[0] * 10 + header[1] >= 2 else "<i", seen))
        for k, (cin, cout, size, bn) in enumerate(convs):
            n = (4 * cout if bn else cout) + cout * cin * size * size
            f.write((k + 0.001 * np.arange(n, dtype=np.float64)).astype("<f4").tobytes())


def _small_yolov3(num_classes=81, **kw):
    bb = FeatureBackbone("darknet53", out_indices=(2, 3, 4), arch_kwargs={"width_mult": WIDTH})
    kw.setdefault("head", {"widths": [_ch(128), _ch(256), _ch(512)]})
    return YOLOv3(bb, num_classes, **kw)


def test_darknet_weight_file_fills_every_layer_in_cfg_order(tmp_path):
    convs = yolov3_cfg_convs()
    path = tmp_path / "yolov3.weights"
    write_darknet_file(path, convs)
    model = _small_yolov3(darknet_weights=str(path))
    layers = darknet_layers(model)
    assert len(layers) == len(convs) == 75  # 52 backbone + 23 head convolutions
    for k, ((conv, bn), (cin, cout, size, has_bn)) in enumerate(zip(layers, convs)):
        assert tuple(conv.weight.shape) == (cout, cin, size, size) and (bn is not None) == has_bn
        first = bn.bias if bn is not None else conv.bias  # beta (or the bias) leads each layer
        assert first[0].item() == pytest.approx(k) and first[1].item() == pytest.approx(k + 0.001)
    stem_conv, stem_bn = layers[0]
    c = stem_bn.num_features
    assert stem_bn.weight[0].item() == pytest.approx(0.001 * c)          # gamma after beta
    assert stem_bn.running_var[0].item() == pytest.approx(0.001 * 3 * c)  # then mean, variance
    assert stem_conv.weight.flatten()[0].item() == pytest.approx(0.001 * 4 * c)
    assert read_darknet_file(str(path))[0] == (0, 2, 5, 32013312)


def test_darknet53_conv74_partial_file_and_bad_files(tmp_path):
    convs = yolov3_cfg_convs()[:52]  # darknet53.conv.74: the backbone's convolutions only
    path = tmp_path / "darknet53.conv.74"
    write_darknet_file(path, convs, header=(0, 1, 0))  # old header: seen is an int32
    bb = FeatureBackbone("darknet53", out_indices=(2, 3, 4), arch_kwargs={"width_mult": WIDTH},
                         pretrained=str(path))
    assert bb.body["stem"].bn.bias[0].item() == pytest.approx(0.0)
    assert bb.body["layer5"][-1].conv2.bn.bias[0].item() == pytest.approx(51.0)
    with pytest.raises(CheckpointError, match="values left after the model's 75 convolutional layers.*number of classes"):
        write_darknet_file(tmp_path / "big.weights", yolov3_cfg_convs() + [(8, 8, 1, False)])
        _small_yolov3(darknet_weights=str(tmp_path / "big.weights"))
    trunc = tmp_path / "trunc.weights"
    trunc.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="not a whole number of float32 values"):
        load_darknet_weights(darknet_layers(Darknet53(width_mult=WIDTH)), str(trunc), partial=True)
    with pytest.raises(CheckpointError, match="ends inside convolutional layer 51"):
        trunc.write_bytes(path.read_bytes()[:-40])
        load_darknet_weights(darknet_layers(Darknet53(width_mult=WIDTH)), str(trunc), partial=True)
    with pytest.raises(CheckpointError, match="Darknet weights not found"):
        _small_yolov3(darknet_weights=str(tmp_path / "missing.weights"))


def test_full_size_yolov3_has_darknets_parameter_count():
    from torchcv.models.detectors.yolov3 import yolov3_darknet53
    model = yolov3_darknet53()
    assert sum(p.numel() for p in model.parameters()) == 61949149  # yolov3.cfg with 80 classes
    assert model.backbone.out_channels == [256, 512, 1024] and model.strides == [8, 16, 32]


def test_letterbox_maps_boxes_there_and_back():
    t = LetterboxTransform(size=128, pad_value=0.5).eval()
    img = torch.rand(3, 60, 100)
    box = torch.tensor([[10.0, 5.0, 90.0, 50.0]])
    batch, placements, targets = t([img], [{"boxes": box.clone(), "labels": torch.tensor([1])}])
    assert batch.shape == (1, 3, 128, 128)
    p = placements[0]
    assert p.left == 0 and p.top == (128 - 77) // 2  # 100 wide -> 128, 60 high -> 77, centred
    assert torch.all(batch[0, :, : p.top] == 0.5) and torch.all(batch[0, :, p.top + 77:] == 0.5)
    mapped = targets[0]["boxes"]
    torch.testing.assert_close(mapped, torch.tensor([[12.8, 5.0 * 77 / 60 + p.top, 115.2, 50.0 * 77 / 60 + p.top]]))
    back = t.postprocess([{"boxes": mapped.clone()}], placements, [(60, 100)])[0]["boxes"]
    torch.testing.assert_close(back, box, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="multiple of the stride 32"):
        LetterboxTransform(size=100)


def test_loss_assigns_the_best_anchor_and_ignores_good_predictions():
    torch.manual_seed(0)
    model = _small_yolov3(num_classes=3, size=128, anchors=[[8, 8], [12, 12], [16, 16], [24, 24], [32, 32],
                                                            [40, 40], [56, 56], [64, 64], [100, 100]]).train()
    # one 30x30 box centred at (52, 52): its best anchor is [32, 32] = anchor 4, scale 1 (stride 16)
    img = torch.rand(3, 128, 128)
    target = {"boxes": torch.tensor([[37.0, 37.0, 67.0, 67.0]]), "labels": torch.tensor([2])}
    outputs = {}
    orig_head = model.head.forward

    def zero_head(feats):
        out = orig_head(feats)
        outputs.update({k: torch.zeros_like(v, requires_grad=True) for k, v in out.items()})
        return outputs

    model.head.forward = zero_head
    losses = model([img], [target])
    # all logits 0: the positive's xy BCE is 2 x log 2 (x the small-box weight), wh: 0.5 * log(30/32)^2 x 2
    scale = 2 - 30 * 30 / (128 * 128)
    assert losses["loss_xy"].item() == pytest.approx(2 * np.log(2) * scale, rel=1e-5)
    assert losses["loss_wh"].item() == pytest.approx(0.5 * 2 * np.log(30 / 32) ** 2 * scale, rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(2 * np.log(2), rel=1e-5)  # 2 classes, logits 0
    losses["loss_obj"].backward()
    grad = outputs["obj"].grad[0, :, 0]
    level1 = 16 * 16 * 3  # offset of the stride-16 map (the stride-8 map is 16 x 16 cells x 3 anchors)
    positive = level1 + (3 * 8 + 3) * 3 + 1  # cell (3, 3) of the 8 x 8 map, its anchor 1 (= anchor 4)
    assert grad[positive] < 0 and (grad < 0).sum() == 1  # the one objectness pushed up
    # predictions whose decoded box overlaps the box > 0.5 (same-size anchors at nearby cells) get no loss
    ignored = (grad == 0).nonzero().flatten()
    assert len(ignored) > 0 and positive not in ignored
    anchors = model.make_anchors((128, 128), [torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 8, 8),
                                              torch.zeros(1, 1, 4, 4)])
    from torchcv.ops import box_iou
    assert (box_iou(anchors[ignored], target["boxes"]) > 0.5).all()


def test_yolov3_learns_a_toy_image():
    torch.manual_seed(0)
    model = _small_yolov3(num_classes=3, size=128, anchors=[[16, 16], [24, 24], [32, 32], [40, 40], [48, 48],
                                                            [56, 56], [64, 64], [80, 80], [96, 96]]).train()
    img = torch.full((3, 120, 100), 0.2)
    img[:, 20:70, 10:60] = 0.9
    target = {"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([1])}
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(40):
        loss = sum(model([img], [target]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model([img])[0]
    assert out["labels"][0] == 1 and out["scores"][0] > 0.3
    from torchcv.ops import box_iou
    assert box_iou(out["boxes"][:1], target["boxes"]).item() > 0.5


def test_anchor_masks_must_fit_the_backbone_and_head():
    with pytest.raises(ConfigError, match="anchor_masks has 2 groups but the backbone gives 3 maps"):
        _small_yolov3(anchor_masks=[[0, 1, 2, 3], [4, 5, 6, 7, 8]])
    with pytest.raises(ConfigError, match="must use each of the 9 anchors exactly once"):
        _small_yolov3(anchor_masks=[[0, 1, 2], [3, 4, 5], [6, 7, 7]])
    from torchcv.models.heads.yolo_head import YOLOv3Head
    head = YOLOv3Head([_ch(256), _ch(512), _ch(1024)], [2, 2, 2], 80, widths=[16, 32, 64])
    with pytest.raises(ConfigError, match=r"head predicts \[2, 2, 2\] anchors per location but anchor_masks give "
                                          r"\[3, 3, 3\]"):
        _small_yolov3(head=head)


def test_loss_weights_are_known_non_negative_numbers():
    assert _small_yolov3(loss_weights={"cls": 4}).loss_weights == {"xy": 1.0, "wh": 1.0, "obj": 1.0, "cls": 4.0}
    with pytest.raises(ConfigError, match="YOLOv3.loss_weights: unknown option 'class'"):
        _small_yolov3(loss_weights={"class": 4.0})
    for bad in ("abc", -1, None):
        with pytest.raises(ConfigError, match=f"YOLOv3.loss_weights.cls={bad!r}: give a number >= 0"):
            _small_yolov3(loss_weights={"cls": bad})


# ---- YOLO-format data ----------------------------------------------------------------------------
def _yolo_tree(tmp_path, lines, name="a", size=(40, 50)):
    import cv2
    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "train" / f"{name}.png"), np.full((size[0], size[1], 3), 128, np.uint8))
    if lines is not None:
        (root / "labels" / "train" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_yolo_dataset_reads_labels(tmp_path):
    from torchcv.data.datasets.yolo import YOLODataset
    root = _yolo_tree(tmp_path, ["1 0.5 0.5 0.4 0.5", "0 0.1 0.1 0.3 0.3", ""])
    _yolo_tree(tmp_path, [], name="b")  # an empty file: an image without objects
    ds = YOLODataset(str(root), "train", classes=["cat", "dog"])
    assert len(ds) == 2 and ds.num_classes == 3
    img, target, meta = ds[0]
    assert img.shape == (3, 40, 50) and meta["orig_size"] == (40, 50)
    torch.testing.assert_close(target["boxes"], torch.tensor([[15.0, 10.0, 35.0, 30.0], [0.0, 0.0, 12.5, 10.0]]))
    assert target["labels"].tolist() == [2, 1]  # class + 1 (0 is the background)
    assert ds.stats["clipped_boxes"] == 1  # the second box reached past the top-left corner
    assert ds.coco.getAnnIds(imgIds=[0]) and ds[1][1]["boxes"].shape == (0, 4)


@pytest.mark.parametrize("line,needle", [
    ("1 0.5 0.5 0.4", "line 2: expected 5 fields 'class x_center y_center width height', got 4"),
    ("1 0.5 0.5 0.4 0.5 0.9", "line 2: expected 5 fields"),
    ("1 0.5 1.5 0.4 0.5", "line 2: coordinates ['0.5', '1.5', '0.4', '0.5'] are outside [0, 1]"),
    ("1 12 40 30 20", "line 2: coordinates"),
    ("2 0.5 0.5 0.4 0.5", "line 2: class id 2 is not an integer in 0..1 (2 class names)"),
    ("1.5 0.5 0.5 0.4 0.5", "line 2: class id 1.5 is not an integer"),
    ("cat 0.5 0.5 0.4 0.5", "line 2: not numbers"),
])
def test_yolo_label_errors_name_file_and_line(tmp_path, line, needle):
    from torchcv.data.datasets.yolo import YOLODataset
    root = _yolo_tree(tmp_path, ["0 0.5 0.5 0.2 0.2", line])
    with pytest.raises(DataError) as e:
        YOLODataset(str(root), "train", classes=["cat", "dog"])
    assert needle in str(e.value) and os.path.join("labels", "train", "a.txt") in str(e.value)


def test_yolo_missing_label_file_fails_loudly(tmp_path):
    from torchcv.data.datasets.yolo import YOLODataset
    root = _yolo_tree(tmp_path, None)
    with pytest.raises(MissingFileError, match=r"no label file for .*a\.png: expected .*labels/train/a\.txt"):
        YOLODataset(str(root), "train", classes=["cat"])
    ds = YOLODataset(str(root), "train", classes=["cat"], missing_labels="empty")
    assert len(ds) == 1 and ds.stats["missing_label_files"] == 1
    with pytest.raises(MissingFileError, match="image folder not found"):
        YOLODataset(str(root), "val", classes=["cat"])
    with pytest.raises(ConfigError, match="either as classes"):
        YOLODataset(str(root), "train")
