"""torchcv.ops against torchvision.ops: exact equality on random and adversarial inputs."""
import math
import os
import subprocess
import sys

import pytest
import torch
import torchvision

import torchcv.ops as ops
import importlib

nms_mod = importlib.import_module("torchcv.ops.nms")

tvops = torchvision.ops
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")
needs_compiled = pytest.mark.skipif(ops.backend() != "compiled", reason="torchcv._C not built (fallback backend)")


def rand_boxes(n, size=500.0, max_wh=120.0, gen=None, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * max_wh + 0.5
    return torch.cat([xy, xy + wh], 1).to(dtype)


def clustered_boxes(n, clusters=40, gen=None, dtype=torch.float32):
    """Proposal-like boxes: jittered copies of a few objects."""
    centers = torch.rand(clusters, 2, generator=gen) * 800
    sizes = torch.rand(clusters, 2, generator=gen) * 150 + 20
    k = torch.randint(0, clusters, (n,), generator=gen)
    c = centers[k] + torch.randn(n, 2, generator=gen) * 8
    s = sizes[k] * (1 + 0.1 * torch.randn(n, 2, generator=gen)).clamp(min=0.3)
    return torch.cat([c - s / 2, c + s / 2], 1).to(dtype)


def make_rois(k, batch, size, gen=None, dtype=torch.float32, outside=True):
    b = rand_boxes(k, size=size, max_wh=size / 2, gen=gen, dtype=dtype)
    if outside:  # some partially / fully outside, negative coords
        b[: k // 4] -= size / 3
        b[k // 4 : k // 3] += size * 0.9
    idx = torch.randint(0, batch, (k, 1), generator=gen).to(dtype)
    return torch.cat([idx, b], 1)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------- backend
def test_backend_is_compiled():
    if os.environ.get("TORCHCV_ALLOW_FALLBACK") == "1" and ops.backend() != "compiled":
        pytest.skip("TORCHCV_ALLOW_FALLBACK=1 and torchcv._C is not built")
    assert ops.backend() == "compiled", "build the ops with `bash extensions/make.sh`"


def test_forced_torchvision_backend_and_single_warning():
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('always')\n"
        "sys.modules['torchcv._C'] = None\n"  # simulate a missing build
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import torchcv.ops as o\n"
        "    import torch\n"
        "    b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10]]); s = torch.tensor([.9, .8])\n"
        "    assert o.nms(b, s, .5).tolist() == [0]\n"
        "    o.roi_align(torch.rand(1, 1, 8, 8), [b], 2)\n"
        "msgs = [str(x.message) for x in w if 'torchcv._C' in str(x.message)]\n"
        "assert o.backend() == 'torchvision', o.backend()\n"
        "assert len(msgs) == 1 and 'bash extensions/make.sh' in msgs[0], msgs\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TORCHCV_OPS_BACKEND", None)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-3000:]


# ------------------------------------------------------------------------- nms
@needs_compiled
@pytest.mark.parametrize("n", [0, 1, 2, 17, 300, 2000])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_random(n, thr, dtype):
    g = gen(n)
    b = rand_boxes(n, gen=g, dtype=dtype)
    s = torch.rand(n, generator=g, dtype=dtype)
    out = ops.nms(b, s, thr)
    assert out.dtype == torch.int64
    assert torch.equal(out, tvops.nms(b, s, thr))


@needs_compiled
def test_nms_tied_scores_keep_lower_index_first():
    g = gen(1)
    b = rand_boxes(500, gen=g, size=300)
    for s in [torch.ones(500), torch.randint(0, 4, (500,), generator=g).float()]:
        out = ops.nms(b, s, 0.5)
        assert torch.equal(out, tvops.nms(b, s, 0.5))
    # disjoint boxes, equal scores -> identity order
    d = torch.arange(50).float()[:, None] * 10 + torch.tensor([0.0, 0, 5, 5])
    assert ops.nms(d, torch.ones(50), 0.5).tolist() == list(range(50))


@needs_compiled
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_iou_exactly_at_threshold(dtype):
    b = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 2, 1], [1, 0, 3, 1], [50, 50, 60, 60]], dtype=dtype)
    s = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5], dtype=dtype)
    # IoU(0, 1) == 0.5 exactly: strict '>' keeps box 1 at threshold 0.5
    assert ops.nms(b, s, 0.5).tolist() == [0, 1, 2, 3, 4]
    assert ops.nms(b, s, 0.49).tolist() == [0, 2, 3, 4]
    for thr in [0.5, 1 / 3, 0.3333333, 0.33333334, 0.49999999, 0.5000001, 0.25, 0.7]:
        assert torch.equal(ops.nms(b, s, thr), tvops.nms(b, s, thr)), thr
    # many pairs whose float IoU sits right at a double threshold
    g = gen(3)
    base = torch.randint(0, 20, (400, 2), generator=g).to(dtype)
    wh = torch.randint(1, 6, (400, 2), generator=g).to(dtype)
    bb = torch.cat([base, base + wh], 1)
    ss = torch.rand(400, generator=g, dtype=dtype)
    for thr in [0.5, 1 / 3, 0.25, 0.2, 2 / 3, 0.6, 0.4]:
        assert torch.equal(ops.nms(bb, ss, thr), tvops.nms(bb, ss, thr)), thr


@needs_compiled
def test_nms_degenerate_and_nan():
    g = gen(4)
    b = rand_boxes(200, gen=g, size=100)
    s = torch.rand(200, generator=g)
    b[:20, 2:] = b[:20, :2]  # zero area
    b[20:30, 2] = b[20:30, 0] - 5  # negative width
    b[30:35] = float("nan")
    b[35:38, 1] = float("nan")
    s[40:45] = float("nan")
    b[45:47] = float("inf")
    for thr in [0.0, 0.5]:
        assert torch.equal(ops.nms(b, s, thr), tvops.nms(b, s, thr))
    one = torch.tensor([[1.0, 2, 3, 4]])
    assert ops.nms(one, torch.tensor([0.3]), 0.5).tolist() == [0]
    e = ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert e.dtype == torch.int64 and e.numel() == 0


@needs_compiled
def test_nms_50k_boxes():
    g = gen(5)
    b = clustered_boxes(50_000, clusters=300, gen=g)
    s = torch.rand(50_000, generator=g)
    assert torch.equal(ops.nms(b, s, 0.7), tvops.nms(b, s, 0.7))


@needs_compiled
def test_nms_half_inputs_promoted():
    g = gen(6)
    b = rand_boxes(300, gen=g)
    s = torch.rand(300, generator=g)
    out = ops.nms(b.half(), s.half(), 0.5)
    assert torch.equal(out, tvops.nms(b.half().float(), s.half().float(), 0.5))


# ---------------------------------------------------------------- batched_nms
@needs_compiled
@pytest.mark.parametrize("n,classes", [(0, 1), (1, 1), (900, 80), (20_000, 80), (6000, 3)])
def test_batched_nms(n, classes):
    g = gen(n + classes)
    b = clustered_boxes(n, clusters=60, gen=g) if n else torch.zeros(0, 4)
    s = torch.randperm(n, generator=g).float() / max(n, 1)  # unique scores: torchvision's final sort is unstable
    idx = torch.randint(0, classes, (n,), generator=g)
    out = ops.batched_nms(b, s, idx, 0.5)
    assert out.dtype == torch.int64
    assert torch.equal(out, tvops.batched_nms(b, s, idx, 0.5))
    # each path equals torchvision's corresponding path ...
    tvb = tvops.boxes
    a = nms_mod._batched_nms_per_class(b, s, idx, 0.5)
    c = nms_mod._batched_nms_coordinate_trick(b, s, idx, 0.5)
    assert torch.equal(a, tvb._batched_nms_vanilla(b, s, idx, 0.5))
    assert torch.equal(c, tvb._batched_nms_coordinate_trick(b, s, idx, 0.5))
    # ... and the two paths agree exactly in float64 (in float32 the coordinate offsets
    # round the boxes, which can flip a near-threshold decision -- torchvision too)
    bd, sd = b.double(), s.double()
    assert torch.equal(nms_mod._batched_nms_per_class(bd, sd, idx, 0.5), nms_mod._batched_nms_coordinate_trick(bd, sd, idx, 0.5))
    assert torch.equal(nms_mod._batched_nms_per_class(bd, sd, idx, 0.5), a)


@needs_compiled
def test_batched_nms_ties_and_negative_class_ids():
    g = gen(7)
    b = clustered_boxes(5000, gen=g)
    s = torch.randint(0, 10, (5000,), generator=g).float()
    idx = torch.randint(-3, 5, (5000,), generator=g)
    a = nms_mod._batched_nms_per_class(b, s, idx, 0.6)
    c = nms_mod._batched_nms_coordinate_trick(b.double(), s.double(), idx, 0.6)
    assert torch.equal(a, nms_mod._batched_nms_per_class(b.double(), s.double(), idx, 0.6))
    assert torch.equal(a, c)  # ties: lower index first on both paths
    assert set(a.tolist()) == set(tvops.batched_nms(b, s, idx, 0.6).tolist())


# ------------------------------------------------------------------ roi_align
def _layouts(x):
    yield "contiguous", x
    yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    big = torch.zeros(x.shape[0], x.shape[1] * 2, x.shape[2] + 3, x.shape[3], dtype=x.dtype)
    v = big[:, ::2, 3:, :]
    v.copy_(x)
    yield "strided", v


@needs_compiled
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_roi_align_matches_torchvision(aligned, sampling_ratio, scale):
    g = gen(int(scale * 100) + sampling_ratio + 10 * aligned)
    x = torch.randn(2, 6, 20, 23, generator=g)
    rois = make_rois(40, 2, 20 / scale, gen=g)
    ref = tvops.roi_align(x, rois, (5, 4), scale, sampling_ratio, aligned)
    for name, xi in _layouts(x):
        out = ops.roi_align(xi, rois, (5, 4), scale, sampling_ratio, aligned)
        assert out.dtype == x.dtype
        assert torch.equal(out, ref), name


@needs_compiled
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_align_backward_matches_torchvision(aligned, layout, dtype):
    g = gen(11 + aligned)
    x = torch.randn(2, 5, 17, 19, generator=g, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    rois = make_rois(30, 2, 60, gen=g, dtype=dtype)
    x1 = x.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    o1 = ops.roi_align(x1, rois, 3, 0.25, 2, aligned)
    o2 = tvops.roi_align(x2, rois, 3, 0.25, 2, aligned)
    go = torch.randn(o1.shape, generator=g, dtype=dtype)
    o1.backward(go)
    o2.backward(go)
    assert torch.equal(o1, o2)
    assert torch.equal(x1.grad, x2.grad)


@needs_compiled
def test_roi_align_list_vs_tensor_rois_and_empty():
    g = gen(12)
    x = torch.randn(3, 4, 16, 16, generator=g)
    boxes = [rand_boxes(5, size=14, max_wh=6, gen=g), rand_boxes(0), rand_boxes(3, size=14, max_wh=6, gen=g)]
    a = ops.roi_align(x, boxes, 2, 1.0, 2)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    assert torch.equal(a, ops.roi_align(x, rois, 2, 1.0, 2))
    assert torch.equal(a, tvops.roi_align(x, boxes, 2, 1.0, 2))
    e = ops.roi_align(x, torch.zeros(0, 5), (7, 7))
    assert e.shape == (0, 4, 7, 7)
    xr = x.clone().requires_grad_()
    ops.roi_align(xr, torch.zeros(0, 5), 7).sum().backward()
    assert torch.equal(xr.grad, torch.zeros_like(x))


@needs_compiled
def test_roi_align_module_and_golden():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    r = torch.tensor([[0.0, 0, 0, 3, 3]])
    # one sample at the bin centre (1.5, 1.5): bilinear of a linear ramp
    assert ops.roi_align(x, r, 1, 1.0, 1, False).item() == 7.5
    # aligned: the box is shifted by -0.5 -> centre (1.0, 1.0) -> x[1, 1]
    assert ops.roi_align(x, r, 1, 1.0, 1, True).item() == 5.0
    m = ops.RoIAlign((1, 1), 1.0, 1, aligned=True)
    assert m(x, r).item() == 5.0 and "RoIAlign" in repr(m)
    # 2x2 bins, 2x2 samples: bin (0,0) samples at 0.375/1.125 -> mean 3.75
    assert torch.allclose(ops.roi_align(x, r, 2, 1.0, 2)[0, 0], torch.tensor([[3.75, 5.25], [9.75, 11.25]]))


@needs_compiled
def test_roi_align_gradcheck():
    g = gen(13)
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, generator=g, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.7, 4.2, 5.1], [1, -1.5, 0.5, 3.3, 2.2], [0, 2.1, 1.4, 6.9, 5.8]], dtype=torch.float64)
    for aligned in (False, True):
        assert torch.autograd.gradcheck(lambda t: ops.roi_align(t, rois, (3, 2), 1.0, 2, aligned), (x,))
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.roi_align(t, rois, 2, 1.0, -1, True), (xc,))


# ------------------------------------------------------------------- roi_pool
@needs_compiled
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.125])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_pool_matches_torchvision(scale, dtype):
    g = gen(int(scale * 1000))
    x = torch.randn(2, 5, 18, 21, generator=g, dtype=dtype)
    rois = make_rois(40, 2, 20 / scale, gen=g, dtype=dtype)
    for name, xi in _layouts(x):
        x1 = xi.detach().clone().requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        o1 = ops.roi_pool(x1, rois, (4, 3), scale)
        o2 = tvops.roi_pool(x2, rois, (4, 3), scale)
        assert torch.equal(o1, o2), name
        go = torch.randn(o1.shape, generator=g, dtype=dtype)
        o1.backward(go)
        o2.backward(go)
        assert torch.equal(x1.grad, x2.grad), name


@needs_compiled
def test_roi_pool_golden_list_empty_gradcheck():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = ops.roi_pool(x, [torch.tensor([[0.0, 0, 3, 3]])], 2, 1.0)
    assert out[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    assert ops.RoIPool(2, 1.0)(x, torch.tensor([[0.0, 0, 0, 3, 3]])).shape == (1, 1, 2, 2)
    assert ops.roi_pool(x, torch.zeros(0, 5), 3).shape == (0, 1, 3, 3)
    g = gen(14)
    xd = torch.randn(1, 2, 6, 6, dtype=torch.float64, generator=g, requires_grad=True)
    rois = torch.tensor([[0, 0, 0, 4, 5], [0, 1, 2, 5, 5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ops.roi_pool(t, rois, 2, 1.0), (xd,))


# ------------------------------------------------------------------ box ops
@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_iou_and_area(fmt):
    g = gen(15)
    a = rand_boxes(50, gen=g)
    b = rand_boxes(70, gen=g)
    a[:3, 2:] = a[:3, :2]
    a[3, 0] = float("nan")
    for dt in (torch.float32, torch.float64, torch.float16):
        x, y = ops.box_iou(a.to(dt), b.to(dt), fmt=fmt), tvops.box_iou(a.to(dt), b.to(dt), fmt=fmt)
        assert x.dtype == y.dtype and torch.allclose(x, y, equal_nan=True, rtol=0, atol=0), (fmt, dt)
        ar, ar_ref = ops.box_area(a.to(dt), fmt=fmt), tvops.box_area(a.to(dt), fmt=fmt)
        assert ar.dtype == ar_ref.dtype and torch.allclose(ar, ar_ref, equal_nan=True, rtol=0, atol=0)
    ints = torch.tensor([[0, 0, 4, 4], [2, 2, 6, 6]])
    assert torch.equal(ops.box_area(ints), tvops.box_area(ints))
    assert torch.equal(ops.box_iou(ints, ints), tvops.box_iou(ints, ints))
    assert math.isclose(ops.box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])).item(), 1 / 7, rel_tol=1e-6)
    # autograd still works (formula path)
    ar = a[4:].clone().requires_grad_()
    ops.box_iou(ar, b).sum().backward()
    assert ar.grad is not None and torch.isfinite(ar.grad).all()


# --------------------------------------------------------- MultiScaleRoIAlign
@needs_compiled
def test_multiscale_roi_align_matches_torchvision():
    g = gen(16)
    image_shapes = [(128, 160), (120, 150)]
    feats = {
        str(i): torch.randn(2, 4, 128 // s, 160 // s, generator=g).requires_grad_() for i, s in enumerate((4, 8, 16, 32))
    }
    feats["pool"] = torch.randn(2, 4, 2, 3, generator=g)
    boxes = [clustered_boxes(37, gen=g).clamp(0, 150) * 0.2 + torch.tensor([0, 0, 8, 8]), rand_boxes(23, size=120, max_wh=100, gen=g)]
    ours = ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    ref = tvops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    a = ours(feats, boxes, image_shapes)
    b = ref(feats, boxes, image_shapes)
    assert torch.equal(a, b)
    ga = torch.autograd.grad(a.square().sum(), [feats["0"], feats["3"]])
    gb = torch.autograd.grad(b.square().sum(), [feats["0"], feats["3"]])
    assert all(torch.equal(p, q) for p, q in zip(ga, gb))
    single = ops.MultiScaleRoIAlign(["1"], (3, 5), -1)
    assert torch.equal(single(feats, boxes, image_shapes), tvops.MultiScaleRoIAlign(["1"], (3, 5), -1)(feats, boxes, image_shapes))


# -------------------------------------------------------------------- errors
def test_errors():
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(ValueError, match="boxes"):
        ops.roi_align(x, torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="input"):
        ops.roi_align(torch.randn(2, 8, 8), torch.zeros(1, 5), 2)
    with pytest.raises(TypeError, match="input"):
        ops.roi_align(x.long(), torch.zeros(1, 5), 2)
    with pytest.raises(TypeError, match="boxes"):
        ops.roi_pool(x, "boxes", 2)
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        ops.roi_pool(x, [torch.zeros(2, 5)], 2)
    with pytest.raises(TypeError, match="output_size"):
        ops.roi_align(x, torch.zeros(1, 5), (2.5, 2))
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_align(x, torch.zeros(1, 5), 0)
    with pytest.raises(RuntimeError, match="device"):
        ops.roi_align(x, torch.zeros(1, 5, device="meta"), 2)
    with pytest.raises(ValueError, match="boxes"):
        ops.nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        ops.nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="boxes"):
        ops.nms(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3), 0.5)
    with pytest.raises(RuntimeError, match="device"):
        ops.nms(torch.zeros(3, 4), torch.zeros(3, device="meta"), 0.5)
    with pytest.raises(TypeError, match="idxs"):
        ops.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="idxs"):
        ops.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="fmt|format"):
        ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4), fmt="abc")
    if ops.backend() == "compiled":
        with pytest.raises(TypeError, match="dtype"):
            ops.roi_align(x, torch.zeros(1, 5, dtype=torch.float64), 2)
        with pytest.raises(RuntimeError, match="batch index"):
            ops.roi_align(x, torch.tensor([[3.0, 0, 0, 2, 2]]), 2)
        with pytest.raises(RuntimeError, match="batch index"):
            ops.roi_pool(x, torch.tensor([[-1.0, 0, 0, 2, 2]]), 2)


# ---------------------------------------------------- torch.compile / autocast
@needs_compiled
def test_torch_compile_smoke():
    torch._dynamo.reset()
    g = gen(17)
    x = torch.randn(2, 3, 12, 12, generator=g)
    rois = make_rois(6, 2, 12, gen=g, outside=False)

    def f(inp, r):
        return ops.roi_align(inp, r, 2, 1.0, 2, True).sum() + ops.roi_pool(inp, r, 2, 1.0).sum()

    cf = torch.compile(f, backend="aot_eager", fullgraph=True)
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    out1, out2 = cf(x1, rois), f(x2, rois)
    out1.backward()
    out2.backward()
    assert torch.allclose(out1, out2) and torch.equal(x1.grad, x2.grad)

    b = rand_boxes(50, gen=g)
    s = torch.rand(50, generator=g)
    cn = torch.compile(lambda bb, ss: ops.nms(bb, ss, 0.5), backend="aot_eager", fullgraph=True)
    assert torch.equal(cn(b, s), tvops.nms(b, s, 0.5))


@needs_compiled
def test_autocast_cpu():
    g = gen(18)
    x = torch.randn(2, 4, 10, 10, generator=g)
    rois = make_rois(8, 2, 10, gen=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.to(torch.bfloat16)
        out = ops.roi_align(xb, rois, 3, 1.0, 2)
        outp = ops.roi_pool(xb, rois, 3, 1.0)
        keep = ops.nms(rois[:, 1:].to(torch.bfloat16), torch.rand(8, generator=g).to(torch.bfloat16), 0.5)
    assert out.dtype == torch.bfloat16 and outp.dtype == torch.bfloat16 and keep.dtype == torch.int64
    assert torch.equal(out, ops.roi_align(xb.float(), rois, 3, 1.0, 2).to(torch.bfloat16))
    assert torch.equal(outp, ops.roi_pool(xb.float(), rois, 3, 1.0).to(torch.bfloat16))


# ---------------------------------------------------------------------- CUDA
@needs_cuda
@needs_compiled
def test_cuda_matches_cpu():
    assert ops.compiled_with_cuda(), "torchcv._C was built without CUDA kernels"
    g = gen(19)
    b = clustered_boxes(5000, gen=g)
    s = torch.rand(5000, generator=g)
    for thr in (0.3, 0.5, 0.7):
        assert torch.equal(ops.nms(b.cuda(), s.cuda(), thr).cpu(), tvops.nms(b, s, thr))
    idx = torch.randint(0, 80, (5000,), generator=g)
    assert torch.equal(ops.batched_nms(b.cuda(), s.cuda(), idx.cuda(), 0.5).cpu(), tvops.batched_nms(b, s, idx, 0.5))
    x = torch.randn(2, 8, 30, 40, generator=g)
    rois = make_rois(64, 2, 120, gen=g)
    for cl in (False, True):
        xi = x.contiguous(memory_format=torch.channels_last) if cl else x
        for dt in (torch.float32, torch.float64):
            xc = xi.to(dt).cuda().requires_grad_()
            xr = xi.to(dt).requires_grad_()
            oc = ops.roi_align(xc, rois.to(dt).cuda(), 7, 0.25, 2, True)
            orf = ops.roi_align(xr, rois.to(dt), 7, 0.25, 2, True)
            assert torch.equal(oc.cpu(), orf)
            go = torch.randn(oc.shape, generator=g, dtype=dt)
            oc.backward(go.cuda())
            orf.backward(go)
            assert torch.allclose(xc.grad.cpu(), xr.grad, atol=1e-5)
            pc = ops.roi_pool(xi.to(dt).cuda(), rois.to(dt).cuda(), 5, 0.25)
            assert torch.equal(pc.cpu(), ops.roi_pool(xi.to(dt), rois.to(dt), 5, 0.25))
        for dt in (torch.float16, torch.bfloat16):
            assert ops.roi_align(xi.to(dt).cuda(), rois.to(dt).cuda(), 7, 0.25, 2).dtype == dt
            assert ops.roi_pool(xi.to(dt).cuda(), rois.to(dt).cuda(), 7, 0.25).dtype == dt


@needs_cuda
@needs_compiled
def test_cuda_deterministic_backward_is_exact():
    g = gen(20)
    x = torch.randn(2, 8, 30, 40, generator=g)
    rois = make_rois(64, 2, 120, gen=g)
    go = torch.randn(64, 8, 7, 7, generator=g)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for cl in (False, True):
            xi = x.contiguous(memory_format=torch.channels_last) if cl else x
            xc = xi.cuda().requires_grad_()
            xr = xi.clone().requires_grad_()
            ops.roi_align(xc, rois.cuda(), 7, 0.25, 0, False).backward(go.cuda())
            ops.roi_align(xr, rois, 7, 0.25, 0, False).backward(go)
            assert torch.equal(xc.grad.cpu(), xr.grad)
            xc2 = xi.cuda().requires_grad_()
            xr2 = xi.clone().requires_grad_()
            ops.roi_pool(xc2, rois.cuda(), 7, 0.25).backward(go.cuda())
            ops.roi_pool(xr2, rois, 7, 0.25).backward(go)
            assert torch.equal(xc2.grad.cpu(), xr2.grad)
    finally:
        torch.use_deterministic_algorithms(prev)
