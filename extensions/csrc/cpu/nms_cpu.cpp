// CPU non-maximum suppression (single-class and per-class).
//
// Algorithm: sort once by score (stable, descending), gather the boxes into
// structure-of-arrays order, compute areas once, then run the exact greedy
// loop.  After each kept box the still-alive candidates are compacted in
// place, so the inner loop only ever touches candidates that can still be
// kept (early-out: suppressed boxes cost nothing afterwards) and it streams
// contiguous memory instead of chasing `order[j]` like the reference.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "../common.h"
#include "../ops.h"

namespace torchcv {
namespace {

using detail::tmax;
using detail::tmin;

// Threshold holder: comparisons must behave like `iou > (double)thr`.
template <typename T>
struct Thr {
  T v;
};
template <typename T>
inline Thr<T> make_thr(double t) {
  return Thr<T>{static_cast<T>(t)};
}
template <>
inline Thr<float> make_thr<float>(double t) {
  return Thr<float>{detail::float_floor(t)};
}

// Suppression test of one kept box against m candidates (contiguous SoA):
// flag[j] = IoU(kept, j) > thr, returns the number of suppressed candidates.
// Branch-free so it vectorises; x86-64 gets an AVX2 clone picked at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TCV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TCV_CLONES
#endif

#define TCV_DEFINE_SUPPRESS(T)                                                              \
  TCV_CLONES int64_t suppress_mask_##T(const T* __restrict x1, const T* __restrict y1,      \
      const T* __restrict x2, const T* __restrict y2, const T* __restrict area, int64_t m,   \
      T ix1, T iy1, T ix2, T iy2, T iarea, T thr, uint8_t* __restrict flag) {               \
    int64_t cnt = 0;                                                                        \
    for (int64_t j = 0; j < m; ++j) {                                                       \
      const T xx1 = tmax(ix1, x1[j]);                                                       \
      const T yy1 = tmax(iy1, y1[j]);                                                       \
      const T xx2 = tmin(ix2, x2[j]);                                                       \
      const T yy2 = tmin(iy2, y2[j]);                                                       \
      const T ww = tmax(static_cast<T>(0), xx2 - xx1);                                      \
      const T hh = tmax(static_cast<T>(0), yy2 - yy1);                                      \
      const T inter = ww * hh;                                                              \
      const T ovr = inter / (iarea + area[j] - inter);                                      \
      const uint8_t s = ovr > thr;                                                          \
      flag[j] = s;                                                                          \
      cnt += s;                                                                             \
    }                                                                                       \
    return cnt;                                                                             \
  }

TCV_DEFINE_SUPPRESS(float)
TCV_DEFINE_SUPPRESS(double)

inline int64_t suppress_mask(const float* x1, const float* y1, const float* x2, const float* y2,
    const float* area, int64_t m, float ix1, float iy1, float ix2, float iy2, float iarea,
    float thr, uint8_t* flag) {
  return suppress_mask_float(x1, y1, x2, y2, area, m, ix1, iy1, ix2, iy2, iarea, thr, flag);
}
inline int64_t suppress_mask(const double* x1, const double* y1, const double* x2,
    const double* y2, const double* area, int64_t m, double ix1, double iy1, double ix2,
    double iy2, double iarea, double thr, uint8_t* flag) {
  return suppress_mask_double(x1, y1, x2, y2, area, m, ix1, iy1, ix2, iy2, iarea, thr, flag);
}

// Greedy NMS over n candidates already in descending score order.
// x1..area/id are SoA arrays (compacted in place as boxes get suppressed),
// id[k] is reported for kept candidates, in keep order.  Returns number kept.
template <typename T>
int64_t greedy_nms(
    T* __restrict x1,
    T* __restrict y1,
    T* __restrict x2,
    T* __restrict y2,
    T* __restrict area,
    int64_t* __restrict id,
    int64_t n,
    Thr<T> thr,
    int64_t* __restrict out) {
  std::vector<uint8_t> flag(n);
  int64_t nkeep = 0;
  int64_t alive = n;
  for (int64_t head = 0; head < alive; ++head) {
    out[nkeep++] = id[head];
    const int64_t lo = head + 1, m = alive - lo;
    if (m == 0) {
      break;
    }
    const int64_t nsup = suppress_mask(x1 + lo, y1 + lo, x2 + lo, y2 + lo, area + lo, m, x1[head],
        y1[head], x2[head], y2[head], area[head], thr.v, flag.data());
    if (nsup == 0) {
      continue;
    }
    // stream compaction of the survivors (w <= j, so in place is safe)
    int64_t w = lo;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t src = lo + j;
      x1[w] = x1[src];
      y1[w] = y1[src];
      x2[w] = x2[src];
      y2[w] = y2[src];
      area[w] = area[src];
      id[w] = id[src];
      w += 1 - flag[j];
    }
    alive = w;
  }
  return nkeep;
}

template <typename T>
struct SoA {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<int64_t> id;
  explicit SoA(int64_t n) : x1(n), y1(n), x2(n), y2(n), area(n), id(n) {}
};

void check_nms_inputs(const at::Tensor& dets, const at::Tensor& scores) {
  TORCH_CHECK(dets.dim() == 2, "nms: boxes should be a 2d tensor, got ", dets.dim(), "D");
  TORCH_CHECK(
      dets.size(1) == 4, "nms: boxes should have 4 elements in dimension 1, got ", dets.size(1));
  TORCH_CHECK(scores.dim() == 1, "nms: scores should be a 1d tensor, got ", scores.dim(), "D");
  TORCH_CHECK(
      dets.size(0) == scores.size(0),
      "nms: boxes and scores should have same number of elements in dimension 0, got ",
      dets.size(0), " and ", scores.size(0));
  TORCH_CHECK(
      dets.scalar_type() == scores.scalar_type(),
      "nms: boxes and scores should have the same dtype, got ", dets.scalar_type(), " and ",
      scores.scalar_type());
}

// Gather boxes in `order` into an SoA buffer and compute areas exactly like
// the reference: (x2 - x1) * (y2 - y1) in T.
template <typename T>
void gather_sorted(
    const T* boxes,  // contiguous [N, 4]
    const int64_t* order,
    int64_t n,
    SoA<T>& s,
    int64_t dst_off = 0) {
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = order[k];
    const T* b = boxes + 4 * i;
    const int64_t d = dst_off + k;
    s.x1[d] = b[0];
    s.y1[d] = b[1];
    s.x2[d] = b[2];
    s.y2[d] = b[3];
    s.area[d] = (b[2] - b[0]) * (b[3] - b[1]);
    s.id[d] = i;
  }
}

at::Tensor nms_cpu(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(dets.device().is_cpu(), "nms: boxes must be a CPU tensor");
  TORCH_CHECK(scores.device().is_cpu(), "nms: scores must be a CPU tensor");
  check_nms_inputs(dets, scores);
  if (dets.size(0) == 0) {
    return at::empty({0}, dets.options().dtype(at::kLong));
  }
  const int64_t n = dets.size(0);
  auto order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto boxes = dets.contiguous();
  at::Tensor keep = at::empty({n}, dets.options().dtype(at::kLong));
  int64_t nkeep = 0;
  AT_DISPATCH_FLOATING_TYPES(dets.scalar_type(), "torchcv_nms_cpu", [&] {
    SoA<scalar_t> s(n);
    gather_sorted<scalar_t>(boxes.data_ptr<scalar_t>(), order_t.data_ptr<int64_t>(), n, s);
    nkeep = greedy_nms<scalar_t>(
        s.x1.data(), s.y1.data(), s.x2.data(), s.y2.data(), s.area.data(), s.id.data(), n,
        make_thr<scalar_t>(iou_threshold), keep.data_ptr<int64_t>());
  });
  return keep.narrow(0, 0, nkeep);
}

// Per-class NMS: identical to running nms() independently on every class and
// merging the kept indices by descending score (ties: lower index first).
at::Tensor batched_nms_cpu(
    const at::Tensor& dets,
    const at::Tensor& scores,
    const at::Tensor& idxs,
    double iou_threshold) {
  TORCH_CHECK(dets.device().is_cpu(), "batched_nms: boxes must be a CPU tensor");
  TORCH_CHECK(scores.device().is_cpu(), "batched_nms: scores must be a CPU tensor");
  TORCH_CHECK(idxs.device().is_cpu(), "batched_nms: idxs must be a CPU tensor");
  check_nms_inputs(dets, scores);
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == dets.size(0),
      "batched_nms: idxs should be a 1d tensor with one entry per box, got shape ", idxs.sizes());
  const int64_t n = dets.size(0);
  if (n == 0) {
    return at::empty({0}, dets.options().dtype(at::kLong));
  }
  auto order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t* order = order_t.data_ptr<int64_t>();
  auto cls_t = idxs.to(at::kLong).contiguous();
  const int64_t* cls = cls_t.data_ptr<int64_t>();
  auto boxes = dets.contiguous();

  // ranks grouped by class, ascending rank (= score order) inside a class
  std::vector<int64_t> by_class(n);
  std::iota(by_class.begin(), by_class.end(), 0);
  std::stable_sort(by_class.begin(), by_class.end(), [&](int64_t a, int64_t b) {
    return cls[order[a]] < cls[order[b]];
  });
  std::vector<int64_t> seg_start;
  for (int64_t k = 0; k < n; ++k) {
    if (k == 0 || cls[order[by_class[k]]] != cls[order[by_class[k - 1]]]) {
      seg_start.push_back(k);
    }
  }
  const int64_t nseg = static_cast<int64_t>(seg_start.size());
  seg_start.push_back(n);

  std::vector<uint8_t> kept_rank(n, 0);
  AT_DISPATCH_FLOATING_TYPES(dets.scalar_type(), "torchcv_batched_nms_cpu", [&] {
    const scalar_t* b = boxes.data_ptr<scalar_t>();
    const auto thr = make_thr<scalar_t>(iou_threshold);
    // largest classes first balances the threads better
    std::vector<int64_t> seg_ids(nseg);
    std::iota(seg_ids.begin(), seg_ids.end(), 0);
    std::stable_sort(seg_ids.begin(), seg_ids.end(), [&](int64_t a, int64_t c) {
      return (seg_start[a + 1] - seg_start[a]) > (seg_start[c + 1] - seg_start[c]);
    });
    at::parallel_for(0, nseg, 1, [&](int64_t s0, int64_t s1) {
      std::vector<int64_t> ord, out;
      for (int64_t si = s0; si < s1; ++si) {
        const int64_t seg = seg_ids[si];
        const int64_t lo = seg_start[seg], m = seg_start[seg + 1] - lo;
        ord.resize(m);
        out.resize(m);
        SoA<scalar_t> s(m);
        for (int64_t k = 0; k < m; ++k) {
          ord[k] = order[by_class[lo + k]];
        }
        gather_sorted<scalar_t>(b, ord.data(), m, s);
        // report ranks rather than box indices
        for (int64_t k = 0; k < m; ++k) {
          s.id[k] = by_class[lo + k];
        }
        const int64_t nk = greedy_nms<scalar_t>(
            s.x1.data(), s.y1.data(), s.x2.data(), s.y2.data(), s.area.data(), s.id.data(), m,
            thr, out.data());
        for (int64_t k = 0; k < nk; ++k) {
          kept_rank[out[k]] = 1;
        }
      }
    });
  });
  int64_t total = 0;
  for (int64_t k = 0; k < n; ++k) {
    total += kept_rank[k];
  }
  at::Tensor keep = at::empty({total}, dets.options().dtype(at::kLong));
  int64_t* kp = keep.data_ptr<int64_t>();
  for (int64_t k = 0, w = 0; k < n; ++k) {
    if (kept_rank[k]) {
      kp[w++] = order[k];
    }
  }
  return keep;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CPU, m) {
  m.impl("nms", TORCH_FN(nms_cpu));
  m.impl("batched_nms", TORCH_FN(batched_nms_cpu));
}

} // namespace torchcv
