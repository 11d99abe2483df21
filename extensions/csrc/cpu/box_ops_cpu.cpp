// CPU box_area / box_iou for xyxy boxes (float / double).
//
// box_iou is a single fused pass (no [N, M, 2] temporaries), parallel over
// rows, with the inner loop over a structure-of-arrays copy of boxes2 so it
// vectorises.  The arithmetic follows the reference op by op:
//   area = (x2 - x1) * (y2 - y1)
//   wh   = clamp(min(rb) - max(lt), 0)        (NaN propagates)
//   iou  = inter / ((area1 + area2) - inter)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

namespace torchcv {
namespace {

// NaN-propagating max / min / clamp(min=0), like torch.maximum & co.
template <typename T>
inline T nmax(T a, T b) {
  return (a != a || b != b) ? (a + b) : (a > b ? a : b);
}
template <typename T>
inline T nmin(T a, T b) {
  return (a != a || b != b) ? (a + b) : (a < b ? a : b);
}
template <typename T>
inline T nclamp0(T a) {
  return (a < (T)0) ? (T)0 : a;
}

void check_boxes(const char* op, const char* name, const at::Tensor& b) {
  TORCH_CHECK(b.device().is_cpu(), op, ": ", name, " must be a CPU tensor");
  TORCH_CHECK(b.dim() >= 1 && b.size(-1) == 4, op, ": ", name,
      " must have shape [..., 4], got ", b.sizes());
  TORCH_CHECK(at::isFloatingType(b.scalar_type()), op, ": ", name,
      " must be a floating point tensor, got ", b.scalar_type());
}

at::Tensor box_area_cpu(const at::Tensor& boxes) {
  check_boxes("box_area", "boxes", boxes);
  auto b = boxes.contiguous();
  auto out_sizes = b.sizes().vec();
  out_sizes.pop_back();
  at::Tensor out = at::empty(out_sizes, b.options());
  const int64_t n = out.numel();
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "torchcv_box_area_cpu", [&] {
    const scalar_t* p = b.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t* q = p + 4 * i;
        o[i] = (q[2] - q[0]) * (q[3] - q[1]);
      }
    });
  });
  return out;
}

at::Tensor box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes("box_iou", "boxes1", boxes1);
  check_boxes("box_iou", "boxes2", boxes2);
  TORCH_CHECK(boxes1.dim() == 2 && boxes2.dim() == 2,
      "box_iou: expected boxes1 [N, 4] and boxes2 [M, 4], got ", boxes1.sizes(), " and ",
      boxes2.sizes());
  TORCH_CHECK(boxes1.scalar_type() == boxes2.scalar_type(),
      "box_iou: boxes1 and boxes2 must have the same dtype, got ", boxes1.scalar_type(),
      " and ", boxes2.scalar_type());
  const int64_t N = boxes1.size(0), M = boxes2.size(0);
  at::Tensor out = at::empty({N, M}, boxes1.options());
  if (N == 0 || M == 0) {
    return out;
  }
  auto a = boxes1.contiguous();
  auto b = boxes2.contiguous();
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "torchcv_box_iou_cpu", [&] {
    using T = scalar_t;
    const T* pb = b.data_ptr<T>();
    std::vector<T> bx1(M), by1(M), bx2(M), by2(M), barea(M);
    for (int64_t j = 0; j < M; ++j) {
      bx1[j] = pb[4 * j];
      by1[j] = pb[4 * j + 1];
      bx2[j] = pb[4 * j + 2];
      by2[j] = pb[4 * j + 3];
      barea[j] = (bx2[j] - bx1[j]) * (by2[j] - by1[j]);
    }
    const T* pa = a.data_ptr<T>();
    T* o = out.data_ptr<T>();
    const int64_t grain = std::max<int64_t>(1, 32768 / M);
    at::parallel_for(0, N, grain, [&](int64_t i0, int64_t i1) {
      const T* __restrict X1 = bx1.data();
      const T* __restrict Y1 = by1.data();
      const T* __restrict X2 = bx2.data();
      const T* __restrict Y2 = by2.data();
      const T* __restrict AR = barea.data();
      for (int64_t i = i0; i < i1; ++i) {
        const T ax1 = pa[4 * i], ay1 = pa[4 * i + 1], ax2 = pa[4 * i + 2], ay2 = pa[4 * i + 3];
        const T aarea = (ax2 - ax1) * (ay2 - ay1);
        T* __restrict row = o + i * M;
        for (int64_t j = 0; j < M; ++j) {
          const T w = nclamp0(nmin(ax2, X2[j]) - nmax(ax1, X1[j]));
          const T h = nclamp0(nmin(ay2, Y2[j]) - nmax(ay1, Y1[j]));
          const T inter = w * h;
          row[j] = inter / ((aarea + AR[j]) - inter);
        }
      }
    });
  });
  return out;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CPU, m) {
  m.impl("box_area", TORCH_FN(box_area_cpu));
  m.impl("box_iou", TORCH_FN(box_iou_cpu));
}

} // namespace torchcv
