// Shared numerics for the torchcv ops.
//
// Every formula here is written so that the CPU and CUDA kernels evaluate the
// exact same sequence of IEEE operations in the element type T (no fused
// multiply-add: the build passes -ffp-contract=off / --fmad=false).  This is
// what makes our results bit-identical to the reference (torchvision.ops CPU)
// implementation and makes the CPU and GPU kernels agree with each other.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define TCV_HD __host__ __device__ __forceinline__
#else
#define TCV_HD inline
#endif

namespace torchcv {
namespace detail {

// std::max / std::min semantics, including which argument wins when a NaN is
// involved: max(a, b) == (a < b) ? b : a, min(a, b) == (b < a) ? b : a.
template <typename T>
TCV_HD T tmax(T a, T b) {
  return (a < b) ? b : a;
}
template <typename T>
TCV_HD T tmin(T a, T b) {
  return (b < a) ? b : a;
}

// Wider type used only where the reference converts to float/double itself
// (ceil/round of an element-type value).  Never used for arithmetic that the
// reference performs in T.
template <typename T>
struct Wide {
  using type = float;
};
template <>
struct Wide<double> {
  using type = double;
};

// Largest float that is <= t.  For a float x (not NaN):
//   (double)x > t   <=>   x > float_floor(t)
// which lets the float NMS kernels compare in float while keeping the
// reference's `float_iou > double_threshold` semantics exactly.
inline float float_floor(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) {
    f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  }
  return f;
}

// Geometry of one RoI for RoIAlign.
template <typename T>
struct AlignGeom {
  int64_t batch;
  T start_h, start_w;
  T bin_h, bin_w;
  int grid_h, grid_w;
  T count;      // max(grid_h * grid_w, 1), used by the forward
  T count_bwd;  // grid_h * grid_w, used by the backward
};

template <typename T>
TCV_HD AlignGeom<T> align_geom(
    const T* roi,
    T scale,
    bool aligned,
    int pooled_h,
    int pooled_w,
    int sampling_ratio) {
  using W = typename Wide<T>::type;
  AlignGeom<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  T offset = aligned ? (T)0.5 : (T)0.0;
  T sw = roi[1] * scale - offset;
  T sh = roi[2] * scale - offset;
  T ew = roi[3] * scale - offset;
  T eh = roi[4] * scale - offset;
  T rw = ew - sw;
  T rh = eh - sh;
  if (!aligned) {
    // malformed RoIs are forced to be at least 1x1
    rw = tmax(rw, (T)1.);
    rh = tmax(rh, (T)1.);
  }
  g.start_h = sh;
  g.start_w = sw;
  g.bin_h = static_cast<T>(rh) / static_cast<T>(pooled_h);
  g.bin_w = static_cast<T>(rw) / static_cast<T>(pooled_w);
  g.grid_h = (sampling_ratio > 0)
      ? sampling_ratio
      : static_cast<int>(::ceil(static_cast<W>(rh / pooled_h)));
  g.grid_w = (sampling_ratio > 0)
      ? sampling_ratio
      : static_cast<int>(::ceil(static_cast<W>(rw / pooled_w)));
  int cnt = g.grid_h * g.grid_w;
  g.count = static_cast<T>(cnt > 1 ? cnt : 1);
  g.count_bwd = static_cast<T>(cnt);
  // the sampling loops run for iy < grid_h; a non-positive grid means "no
  // samples" (negative-size aligned RoIs), so clamp it for the kernels
  g.grid_h = g.grid_h > 0 ? g.grid_h : 0;
  g.grid_w = g.grid_w > 0 ? g.grid_w : 0;
  return g;
}

// One sampling coordinate along one axis, with the bilinear clamping rules
// applied.  The 2-D bilinear weights are products of the per-axis ones, and
// the 2-D "outside the map" test is the conjunction of the per-axis tests, so
// sampling points can be tabulated per axis and combined later.
template <typename T>
struct AxisSample {
  int lo, hi;
  T l, h;  // weight of hi (=coordinate - lo) and of lo (=1 - l)
  bool valid;
};

// coordinate of sample `i` (0..grid-1) of bin `p`
template <typename T>
TCV_HD T sample_coord(T start, T bin, int p, int i, int grid) {
  return start + p * bin + static_cast<T>(i + .5f) * bin / static_cast<T>(grid);
}

template <typename T>
TCV_HD AxisSample<T> axis_sample(T c, int size) {
  AxisSample<T> s;
  // written as !(in range) so that NaN coordinates are treated as outside
  if (!(c >= -1.0 && c <= size)) {
    s.lo = s.hi = 0;
    s.l = s.h = (T)0;
    s.valid = false;
    return s;
  }
  if (c <= 0) {
    c = 0;
  }
  int lo = (int)c;
  int hi;
  if (lo >= size - 1) {
    hi = lo = size - 1;
    c = (T)lo;
  } else {
    hi = lo + 1;
  }
  T l = c - lo;
  T h = 1. - l;
  s.lo = lo;
  s.hi = hi;
  s.l = l;
  s.h = h;
  s.valid = true;
  return s;
}

// Geometry of one RoI for RoIPool.
struct PoolGeom {
  int64_t batch;
  int start_h, start_w;
  int height, width;  // >= 1
};

template <typename T>
TCV_HD PoolGeom pool_geom(const T* roi, T scale) {
  using W = typename Wide<T>::type;
  PoolGeom g;
  g.batch = static_cast<int64_t>(roi[0]);
  g.start_w = static_cast<int>(::round(static_cast<W>(roi[1] * scale)));
  g.start_h = static_cast<int>(::round(static_cast<W>(roi[2] * scale)));
  int end_w = static_cast<int>(::round(static_cast<W>(roi[3] * scale)));
  int end_h = static_cast<int>(::round(static_cast<W>(roi[4] * scale)));
  g.width = tmax(end_w - g.start_w + 1, 1);
  g.height = tmax(end_h - g.start_h + 1, 1);
  return g;
}

// [start, end) of bin p along one axis, clipped to [0, size].
template <typename T>
TCV_HD void pool_bin(int p, int roi_start, int roi_size, int pooled, int size, int& s, int& e) {
  using W = typename Wide<T>::type;
  T bin = static_cast<T>(roi_size) / static_cast<T>(pooled);
  int a = static_cast<int>(::floor(static_cast<W>(static_cast<T>(p) * bin)));
  int b = static_cast<int>(::ceil(static_cast<W>(static_cast<T>(p + 1) * bin)));
  s = tmin(tmax(a + roi_start, 0), size);
  e = tmin(tmax(b + roi_start, 0), size);
}

} // namespace detail
} // namespace torchcv
