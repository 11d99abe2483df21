"""torchcv.ops where torchvision's own test_ops.py used to fail on them: TorchScript, FX, quantized
tensors, exception types, batched_nms without arguments, channels-last outputs, and ONNX export
through both exporters checked in onnxruntime."""
import pytest
import torch
import torch.fx
import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names

import torchcv.ops as ops

tvops = torchvision.ops


def boxes_scores(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    b = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 20 + 1], 1)
    return b, torch.rand(n, generator=g)


def test_torchscript_functions_match_eager():
    b, s = boxes_scores()
    idx = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.jit.script(ops.nms)(b, s, 0.5), ops.nms(b, s, 0.5))
    assert torch.equal(torch.jit.script(ops.batched_nms)(b, s, idx, 0.5), tvops.batched_nms(b, s, idx, 0.5))
    assert torch.equal(torch.jit.script(ops.box_iou)(b, b[:7]), ops.box_iou(b, b[:7]))
    assert torch.equal(torch.jit.script(ops.box_area)(b), ops.box_area(b))
    x = torch.rand(2, 3, 16, 16)
    rois = torch.tensor([[0, 1.0, 1, 9, 9], [1, 2, 3, 14, 12]])
    assert torch.equal(torch.jit.script(ops.roi_align)(x, rois, 3, 0.5, 2, True), ops.roi_align(x, rois, 3, 0.5, 2, True))
    assert torch.equal(torch.jit.script(ops.roi_pool)(x, [rois[:1, 1:], rois[1:, 1:]], [2, 3]),
                       tvops.roi_pool(x, [rois[:1, 1:], rois[1:, 1:]], [2, 3]))


def test_torchscript_modules_and_multiscale():
    x = torch.rand(2, 4, 16, 16)
    boxes = [torch.tensor([[1.0, 1, 9, 9]]), torch.tensor([[2.0, 3, 14, 12], [0, 0, 5, 5]])]
    for m in (ops.RoIAlign((3, 3), 0.5, 2), ops.RoIPool([2, 2], 1.0)):
        assert torch.equal(torch.jit.script(m)(x, boxes), m(x, boxes))
    pool = ops.MultiScaleRoIAlign(["0", "1"], 3, 2)
    feats = {"0": torch.rand(2, 4, 32, 32), "1": torch.rand(2, 4, 16, 16)}
    sizes = [(128, 128), (120, 128)]
    ref = tvops.MultiScaleRoIAlign(["0", "1"], 3, 2)(feats, boxes, sizes)
    assert torch.equal(torch.jit.script(pool)(feats, boxes, sizes), ref)


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.align = ops.RoIAlign(2, 1.0, 2)
        self.pool = ops.RoIPool(2, 1.0)

    def forward(self, x, rois):
        return self.align(x, rois) + self.pool(x, rois)


def test_fx_traces_modules_holding_the_ops():
    x = torch.rand(2, 3, 8, 8)
    rois = torch.tensor([[0, 0, 0, 5, 5], [1, 1, 1, 7, 6.0]])
    gm = torch.fx.symbolic_trace(Holder())
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert ops.roi_align in targets and ops.roi_pool in targets  # kept as single calls
    assert torch.equal(gm(x, rois), Holder()(x, rois))
    train, evaluation = get_graph_node_names(Holder())
    assert train == evaluation == ["x", "rois", "align.roi_align", "pool.roi_pool", "add"]


def test_quantized_roi_align_and_nms():
    x = torch.randint(50, 100, (1, 2, 10, 10)).float()
    qx = torch.quantize_per_tensor(x, 2.0, 10, torch.quint8)
    rois = torch.tensor([[0, 0, 0, 5, 5], [0, 2, 2, 9, 9.0]])
    qy = ops.roi_align(qx, rois, 3)
    assert qy.is_quantized and qy.q_scale() == 2.0 and qy.q_zero_point() == 10
    ref = torch.quantize_per_tensor(ops.roi_align(qx.dequantize(), rois, 3), 2.0, 10, torch.quint8)
    assert torch.equal(qy.int_repr(), ref.int_repr())
    with pytest.raises(RuntimeError, match="Only one image per batch"):
        ops.roi_align(torch.quantize_per_tensor(torch.rand(2, 1, 4, 4), 1.0, 0, torch.quint8), rois, 2)
    b, s = boxes_scores()
    qb = torch.quantize_per_tensor(b, 1.0, 0, torch.quint8)
    qs = torch.quantize_per_tensor(s * 100, 1.0, 0, torch.quint8)
    assert torch.equal(ops.nms(qb, qs, 0.5), ops.nms(qb.dequantize(), qs.dequantize(), 0.5))


def test_exception_types_match_torchvision():
    x = torch.rand(1, 1, 8, 8)
    for bad in (lambda: ops.roi_align(x, torch.zeros(1, 4), 2), lambda: ops.roi_pool(x, [torch.zeros(1, 3)], 2)):
        with pytest.raises(AssertionError):  # torchvision: torch._assert
            bad()
        with pytest.raises(ValueError):      # ours, unchanged
            bad()
    for bad_args in ((torch.rand(4), torch.rand(3)), (torch.rand(3, 5), torch.rand(3)), (torch.rand(3, 4), torch.rand(4))):
        with pytest.raises(RuntimeError):    # torchvision: TORCH_CHECK
            ops.nms(*bad_args, 0.5)


def test_batched_nms_empty_with_none_arguments():
    empty = torch.empty((0,), dtype=torch.int64)
    assert torch.equal(ops.batched_nms(empty, None, None, None), empty)
    out = ops.batched_nms(torch.empty(0, 4), torch.empty(0), torch.empty(0, dtype=torch.long), 0.5)
    assert out.dtype == torch.int64 and out.numel() == 0


def test_channels_last_input_gives_contiguous_output_and_same_grads():
    x = torch.rand(2, 8, 10, 10)
    rois = torch.tensor([[0, 0, 0, 9, 9], [1, 0, 5, 4, 9.0]])
    for fn, ref in ((ops.roi_align, tvops.roi_align), (ops.roi_pool, tvops.roi_pool)):
        xc = x.contiguous(memory_format=torch.channels_last).requires_grad_()
        y = fn(xc, rois, 3)
        assert y.is_contiguous()
        y.view(2, -1).square().sum().backward()
        xr = x.clone().requires_grad_()
        ref(xr, rois, 3).square().sum().backward()
        assert torch.equal(y.detach(), ref(x, rois, 3)) and torch.equal(xc.grad, xr.grad)


class OpsModel(nn.Module):
    def forward(self, feat, boxes, scores):
        keep = ops.nms(boxes, scores, 0.5)
        rois = torch.cat([torch.zeros_like(boxes[keep][:, :1]), boxes[keep]], 1)
        return keep, ops.roi_align(feat, rois, 3, 0.5, 2, True), ops.roi_align(feat, rois, 2, 0.5, -1, False)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_ops_export_to_onnx_and_match_in_onnxruntime(tmp_path, dynamo):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[export])")
    if ops.backend() != "compiled":
        pytest.skip("torchcv._C not built: the torchvision fallback exports through torchvision's symbolics")
    from torchcv.ops.onnx import custom_translation_table, register_symbolics
    g = torch.Generator().manual_seed(0)
    feat = torch.rand(1, 4, 16, 16, generator=g)
    b, s = boxes_scores(30, seed=3)
    path = str(tmp_path / "ops.onnx")
    if dynamo:
        pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e .[export])")
        dim = torch.export.Dim.DYNAMIC
        torch.onnx.export(OpsModel(), (feat, b, s), path, dynamo=True, custom_translation_table=custom_translation_table(),
                          dynamic_shapes={"feat": {2: dim, 3: dim}, "boxes": {0: dim}, "scores": {0: dim}})
    else:
        register_symbolics(16)
        torch.onnx.export(OpsModel(), (feat, b, s), path, dynamo=False, opset_version=16,
                          input_names=["feat", "boxes", "scores"], dynamic_axes={"boxes": [0], "scores": [0]})
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for seed in (3, 4):
        b, s = boxes_scores(30 + seed, seed=seed)
        ref = OpsModel()(feat, b, s)
        got = session.run(None, {"feat": feat.numpy(), "boxes": b.numpy(), "scores": s.numpy()})
        assert sorted(got[0].tolist()) == sorted(ref[0].tolist())
        torch.testing.assert_close(torch.from_numpy(got[1]), ref[1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(torch.from_numpy(got[2]), ref[2], rtol=1e-5, atol=1e-5)
