// CPU RoIAlign forward / backward.
//
// Forward: parallel over RoIs.  Bilinear sampling positions and weights are
// computed once per RoI (per bin sample) and reused for every channel.
//   * NCHW input: per channel, a gather over the pre-computed taps.
//   * NHWC input: the channel loop is innermost and contiguous (SIMD).
// Backward: parallel over (channel, image) planes, or (channel block, image)
// for NHWC.  A worker owns its part of grad_input exclusively, so there are
// no races and no atomics, and every grad_input element receives its
// contributions in the same order as a sequential loop over
// (roi, ph, pw, iy, ix) -- results are deterministic and bit-identical to the
// single-threaded reference.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common.h"
#include "../ops.h"
#include "roi_utils.h"

namespace torchcv {
namespace {

using detail::AlignGeom;
using detail::AxisSample;

template <typename T>
struct Tap {
  int64_t p1, p2, p3, p4;
  T w1, w2, w3, w4;
};

// Axis tables of one RoI: ys[ph * grid_h + iy], xs[pw * grid_w + ix].
template <typename T>
void axis_tables(
    const AlignGeom<T>& g,
    int64_t H,
    int64_t W,
    int64_t PH,
    int64_t PW,
    std::vector<AxisSample<T>>& ys,
    std::vector<AxisSample<T>>& xs) {
  ys.resize(PH * g.grid_h);
  xs.resize(PW * g.grid_w);
  for (int ph = 0; ph < PH; ++ph) {
    for (int iy = 0; iy < g.grid_h; ++iy) {
      ys[ph * g.grid_h + iy] = detail::axis_sample<T>(
          detail::sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h), (int)H);
    }
  }
  for (int pw = 0; pw < PW; ++pw) {
    for (int ix = 0; ix < g.grid_w; ++ix) {
      xs[pw * g.grid_w + ix] = detail::axis_sample<T>(
          detail::sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w), (int)W);
    }
  }
}

// Taps of one RoI in (ph, pw, iy, ix) order.  Samples outside the map get
// position 0 and weight 0 (they still read element 0, like the reference).
// `pix` is the stride between neighbouring pixels (1 for NCHW, C for NHWC).
template <typename T>
void build_taps(
    const AlignGeom<T>& g,
    int64_t W,
    int64_t PH,
    int64_t PW,
    int64_t pix,
    const std::vector<AxisSample<T>>& ys,
    const std::vector<AxisSample<T>>& xs,
    std::vector<Tap<T>>& taps) {
  taps.resize(PH * PW * g.grid_h * g.grid_w);
  int64_t k = 0;
  for (int ph = 0; ph < PH; ++ph) {
    for (int pw = 0; pw < PW; ++pw) {
      for (int iy = 0; iy < g.grid_h; ++iy) {
        const AxisSample<T>& y = ys[ph * g.grid_h + iy];
        for (int ix = 0; ix < g.grid_w; ++ix) {
          const AxisSample<T>& x = xs[pw * g.grid_w + ix];
          Tap<T>& t = taps[k++];
          if (y.valid && x.valid) {
            t.p1 = (y.lo * W + x.lo) * pix;
            t.p2 = (y.lo * W + x.hi) * pix;
            t.p3 = (y.hi * W + x.lo) * pix;
            t.p4 = (y.hi * W + x.hi) * pix;
            t.w1 = y.h * x.h;
            t.w2 = y.h * x.l;
            t.w3 = y.l * x.h;
            t.w4 = y.l * x.l;
          } else {
            t.p1 = t.p2 = t.p3 = t.p4 = 0;
            t.w1 = t.w2 = t.w3 = t.w4 = (T)0;
          }
        }
      }
    }
  }
}

// acc[c] += w1*a[c] + w2*b[c] + w3*d[c] + w4*e[c]   (vectorisable)
template <typename T>
inline void axpy4(
    T* __restrict acc,
    const T* __restrict a,
    const T* __restrict b,
    const T* __restrict d,
    const T* __restrict e,
    T w1,
    T w2,
    T w3,
    T w4,
    int64_t n) {
#pragma GCC ivdep
  for (int64_t c = 0; c < n; ++c) {
    acc[c] += w1 * a[c] + w2 * b[c] + w3 * d[c] + w4 * e[c];
  }
}

// CB channels at a time: every tap (positions + weights) is loaded once per
// block instead of once per channel, and the CB accumulators are independent
// (instruction-level parallelism).  Per channel the arithmetic is exactly the
// reference's: val += w1*v1 + w2*v2 + w3*v3 + w4*v4, then val /= count.
template <typename T, int CB>
inline void forward_nchw_block(
    const T* in0,
    int64_t in_plane,
    T* out0,
    int64_t out_plane,
    const Tap<T>* taps,
    int64_t nbins,
    int64_t spb,
    T count,
    int nc) {
  int64_t k = 0;
  for (int64_t bin = 0; bin < nbins; ++bin) {
    T val[CB];
    for (int cc = 0; cc < CB; ++cc) {
      val[cc] = (T)0.;
    }
    for (int64_t s = 0; s < spb; ++s, ++k) {
      const Tap<T> t = taps[k];
      for (int cc = 0; cc < CB; ++cc) {
        if (CB > 1 || cc < nc) {
          const T* in = in0 + cc * in_plane;
          val[cc] += t.w1 * in[t.p1] + t.w2 * in[t.p2] + t.w3 * in[t.p3] + t.w4 * in[t.p4];
        }
      }
    }
    for (int cc = 0; cc < CB; ++cc) {
      T v = val[cc];
      v /= count;
      out0[cc * out_plane + bin] = v;
    }
  }
}

template <typename T>
void forward_nchw(
    const T* input,
    const T* rois,
    T* output,
    const std::vector<AlignGeom<T>>& geo,
    int64_t K,
    int64_t C,
    int64_t H,
    int64_t W,
    int64_t PH,
    int64_t PW) {
  constexpr int CB = 8;
  at::parallel_for(0, K, 1, [&](int64_t n0, int64_t n1) {
    std::vector<AxisSample<T>> ys, xs;
    std::vector<Tap<T>> taps;
    for (int64_t n = n0; n < n1; ++n) {
      const AlignGeom<T>& g = geo[n];
      axis_tables(g, H, W, PH, PW, ys, xs);
      build_taps(g, W, PH, PW, 1, ys, xs, taps);
      const int64_t spb = (int64_t)g.grid_h * g.grid_w;  // samples per bin
      const int64_t plane = H * W, nbins = PH * PW;
      int64_t c = 0;
      for (; c + CB <= C; c += CB) {
        forward_nchw_block<T, CB>(input + (g.batch * C + c) * plane, plane,
            output + (n * C + c) * nbins, nbins, taps.data(), nbins, spb, g.count, CB);
      }
      for (; c < C; ++c) {
        forward_nchw_block<T, 1>(input + (g.batch * C + c) * plane, plane,
            output + (n * C + c) * nbins, nbins, taps.data(), nbins, spb, g.count, 1);
      }
    }
  });
}

template <typename T>
void forward_nhwc(
    const T* input,
    const T* rois,
    T* output,  // [K, PH, PW, C]
    const std::vector<AlignGeom<T>>& geo,
    int64_t K,
    int64_t C,
    int64_t H,
    int64_t W,
    int64_t PH,
    int64_t PW) {
  at::parallel_for(0, K, 1, [&](int64_t n0, int64_t n1) {
    std::vector<AxisSample<T>> ys, xs;
    std::vector<Tap<T>> taps;
    std::vector<T> acc(C);
    for (int64_t n = n0; n < n1; ++n) {
      const AlignGeom<T>& g = geo[n];
      axis_tables(g, H, W, PH, PW, ys, xs);
      build_taps(g, W, PH, PW, C, ys, xs, taps);
      const int64_t spb = (int64_t)g.grid_h * g.grid_w;
      const T* in = input + g.batch * H * W * C;
      int64_t k = 0;
      for (int64_t bin = 0; bin < PH * PW; ++bin) {
        T* a = acc.data();
        for (int64_t c = 0; c < C; ++c) {
          a[c] = (T)0.;
        }
        for (int64_t s = 0; s < spb; ++s, ++k) {
          const Tap<T>& t = taps[k];
          axpy4<T>(a, in + t.p1, in + t.p2, in + t.p3, in + t.p4, t.w1, t.w2, t.w3, t.w4, C);
        }
        T* out = output + (n * PH * PW + bin) * C;
        const T cnt = g.count;
        for (int64_t c = 0; c < C; ++c) {
          out[c] = a[c] / cnt;
        }
      }
    }
  });
}

template <typename T>
std::vector<AlignGeom<T>> all_geoms(
    const T* rois,
    int64_t K,
    double spatial_scale,
    int64_t PH,
    int64_t PW,
    int64_t sampling_ratio,
    bool aligned) {
  std::vector<AlignGeom<T>> geo(K);
  const T scale = static_cast<T>(spatial_scale);
  for (int64_t n = 0; n < K; ++n) {
    geo[n] = detail::align_geom<T>(rois + 5 * n, scale, aligned, (int)PH, (int)PW,
        (int)sampling_ratio);
  }
  return geo;
}

at::Tensor roi_align_forward_cpu(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  TORCH_CHECK(input.device().is_cpu(), "roi_align: input must be a CPU tensor");
  TORCH_CHECK(rois.device().is_cpu(), "roi_align: rois must be a CPU tensor");
  check_roi_inputs("roi_align", input, rois, pooled_height, pooled_width);
  const int64_t K = rois.size(0), B = input.size(0), C = input.size(1), H = input.size(2),
                W = input.size(3);
  const bool cl = is_channels_last(input);
  at::Tensor output = at::empty({K, C, pooled_height, pooled_width}, input.options(),
      cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  if (output.numel() == 0) {
    return output.zero_().contiguous();
  }
  auto rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
      "torchcv_roi_align_forward_cpu", [&] {
        const scalar_t* r = rois_c.data_ptr<scalar_t>();
        cpu::group_rois<scalar_t>("roi_align", r, K, B);  // validates batch indices
        auto geo = all_geoms<scalar_t>(r, K, spatial_scale, pooled_height, pooled_width,
            sampling_ratio, aligned);
        if (cl) {
          auto in = input.contiguous(at::MemoryFormat::ChannelsLast);
          forward_nhwc<scalar_t>(in.data_ptr<scalar_t>(), r, output.data_ptr<scalar_t>(), geo,
              K, C, H, W, pooled_height, pooled_width);
        } else {
          auto in = input.contiguous();
          forward_nchw<scalar_t>(in.data_ptr<scalar_t>(), r, output.data_ptr<scalar_t>(), geo,
              K, C, H, W, pooled_height, pooled_width);
        }
      });
  // computed in the input's layout (vectorised over channels when channels-last), returned
  // contiguous like torchvision, so callers may .view() it
  return output.contiguous();
}

// g * w / count, evaluated exactly as the reference does.  When count is a
// power of two the division is replaced by an (exact) multiplication.
template <typename T>
struct Scaler {
  T count, inv;
  bool pow2;
  explicit Scaler(T cnt) : count(cnt) {
    const double c = static_cast<double>(cnt);
    int e = 0;
    pow2 = c > 0 && std::frexp(c, &e) == 0.5;
    inv = pow2 ? static_cast<T>(1.0 / c) : (T)1;
  }
  inline T operator()(T gw) const {
    return pow2 ? gw * inv : gw / count;
  }
};

template <typename T>
void backward_nchw(
    const T* grad,
    int64_t sn,
    int64_t sc,
    int64_t sh,
    int64_t sw,
    T* gin,  // [B, C, H, W] contiguous, zeroed
    const std::vector<AlignGeom<T>>& geo,
    const cpu::RoiGroups& groups,
    int64_t B,
    int64_t C,
    int64_t H,
    int64_t W,
    int64_t PH,
    int64_t PW) {
  const int64_t K = static_cast<int64_t>(geo.size());
  // per-RoI axis tables, computed once (in parallel) and shared by all planes
  std::vector<int64_t> yoff(K + 1, 0), xoff(K + 1, 0);
  for (int64_t n = 0; n < K; ++n) {
    yoff[n + 1] = yoff[n] + PH * geo[n].grid_h;
    xoff[n + 1] = xoff[n] + PW * geo[n].grid_w;
  }
  std::vector<AxisSample<T>> yt(yoff[K]), xt(xoff[K]);
  at::parallel_for(0, K, 16, [&](int64_t n0, int64_t n1) {
    std::vector<AxisSample<T>> ys, xs;
    for (int64_t n = n0; n < n1; ++n) {
      axis_tables(geo[n], H, W, PH, PW, ys, xs);
      std::copy(ys.begin(), ys.end(), yt.begin() + yoff[n]);
      std::copy(xs.begin(), xs.end(), xt.begin() + xoff[n]);
    }
  });
  // planes ordered (c, b) so every worker gets RoIs of every image
  at::parallel_for(0, B * C, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c = p / B, b = p % B;
      T* plane = gin + (b * C + c) * H * W;
      std::fill(plane, plane + H * W, (T)0);  // first touch by the owner, while it is cached
      for (int64_t gi = groups.offset[b]; gi < groups.offset[b + 1]; ++gi) {
        const int64_t n = groups.list[gi];
        const AlignGeom<T>& g = geo[n];
        if (g.grid_h <= 0 || g.grid_w <= 0) {
          continue;
        }
        const Scaler<T> scale(g.count_bwd);
        const AxisSample<T>* ys = yt.data() + yoff[n];
        const AxisSample<T>* xs = xt.data() + xoff[n];
        const T* go = grad + n * sn + c * sc;
        for (int64_t ph = 0; ph < PH; ++ph) {
          for (int64_t pw = 0; pw < PW; ++pw) {
            const T gv = go[ph * sh + pw * sw];
            for (int iy = 0; iy < g.grid_h; ++iy) {
              const AxisSample<T>& y = ys[ph * g.grid_h + iy];
              if (!y.valid) {
                continue;
              }
              T* row_lo = plane + y.lo * W;
              T* row_hi = plane + y.hi * W;
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisSample<T>& x = xs[pw * g.grid_w + ix];
                if (!x.valid) {
                  continue;
                }
                const T w1 = y.h * x.h, w2 = y.h * x.l, w3 = y.l * x.h, w4 = y.l * x.l;
                const T g1 = scale(gv * w1), g2 = scale(gv * w2), g3 = scale(gv * w3),
                        g4 = scale(gv * w4);
                row_lo[x.lo] += g1;
                row_lo[x.hi] += g2;
                row_hi[x.lo] += g3;
                row_hi[x.hi] += g4;
              }
            }
          }
        }
      }
    }
  });
}

template <typename T>
inline void scatter4(
    T* d1,
    T* d2,
    T* d3,
    T* d4,
    const T* __restrict gv,
    T w1,
    T w2,
    T w3,
    T w4,
    const Scaler<T>& s,
    int64_t n) {
  // d1..d4 may alias each other (clamped samples), so they are updated one
  // after the other, in the reference order.
  if (s.pow2) {
    const T inv = s.inv;
    for (int64_t c = 0; c < n; ++c) d1[c] += (gv[c] * w1) * inv;
    for (int64_t c = 0; c < n; ++c) d2[c] += (gv[c] * w2) * inv;
    for (int64_t c = 0; c < n; ++c) d3[c] += (gv[c] * w3) * inv;
    for (int64_t c = 0; c < n; ++c) d4[c] += (gv[c] * w4) * inv;
  } else {
    const T cnt = s.count;
    for (int64_t c = 0; c < n; ++c) d1[c] += (gv[c] * w1) / cnt;
    for (int64_t c = 0; c < n; ++c) d2[c] += (gv[c] * w2) / cnt;
    for (int64_t c = 0; c < n; ++c) d3[c] += (gv[c] * w3) / cnt;
    for (int64_t c = 0; c < n; ++c) d4[c] += (gv[c] * w4) / cnt;
  }
}

template <typename T>
void backward_nhwc(
    const T* grad,  // [K, PH, PW, C] contiguous (channels-last view)
    T* gin,         // [B, H, W, C], zeroed
    const std::vector<AlignGeom<T>>& geo,
    const cpu::RoiGroups& groups,
    int64_t B,
    int64_t C,
    int64_t H,
    int64_t W,
    int64_t PH,
    int64_t PW) {
  const int64_t CB = std::max<int64_t>(16, 128 / (int64_t)sizeof(T));  // channels per unit
  const int64_t ncb = (C + CB - 1) / CB;
  at::parallel_for(0, ncb * B, 1, [&](int64_t u0, int64_t u1) {
    std::vector<AxisSample<T>> ys, xs;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t cb = u / B, b = u % B;
      const int64_t c0 = cb * CB, nc = std::min(CB, C - c0);
      T* base = gin + b * H * W * C + c0;
      for (int64_t px = 0; px < H * W; ++px) {
        std::fill(base + px * C, base + px * C + nc, (T)0);
      }
      for (int64_t gi = groups.offset[b]; gi < groups.offset[b + 1]; ++gi) {
        const int64_t n = groups.list[gi];
        const AlignGeom<T>& g = geo[n];
        if (g.grid_h <= 0 || g.grid_w <= 0) {
          continue;
        }
        axis_tables(g, H, W, PH, PW, ys, xs);
        const Scaler<T> scale(g.count_bwd);
        for (int64_t ph = 0; ph < PH; ++ph) {
          for (int64_t pw = 0; pw < PW; ++pw) {
            const T* gv = grad + ((n * PH + ph) * PW + pw) * C + c0;
            for (int iy = 0; iy < g.grid_h; ++iy) {
              const AxisSample<T>& y = ys[ph * g.grid_h + iy];
              if (!y.valid) {
                continue;
              }
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisSample<T>& x = xs[pw * g.grid_w + ix];
                if (!x.valid) {
                  continue;
                }
                const T w1 = y.h * x.h, w2 = y.h * x.l, w3 = y.l * x.h, w4 = y.l * x.l;
                scatter4<T>(base + (y.lo * W + x.lo) * C, base + (y.lo * W + x.hi) * C,
                    base + (y.hi * W + x.lo) * C, base + (y.hi * W + x.hi) * C, gv, w1, w2, w3,
                    w4, scale, nc);
              }
            }
          }
        }
      }
    }
  });
}

at::Tensor roi_align_backward_cpu(
    const at::Tensor& grad,
    const at::Tensor& rois,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t batch_size,
    int64_t channels,
    int64_t height,
    int64_t width,
    int64_t sampling_ratio,
    bool aligned) {
  TORCH_CHECK(grad.device().is_cpu(), "roi_align_backward: grad must be a CPU tensor");
  TORCH_CHECK(rois.device().is_cpu(), "roi_align_backward: rois must be a CPU tensor");
  check_backward_inputs("roi_align_backward", grad, rois, pooled_height, pooled_width, channels);
  const int64_t K = rois.size(0);
  const bool cl = is_channels_last(grad);
  // every element is zeroed by the worker that owns it (see the kernels)
  at::Tensor gin = at::empty({batch_size, channels, height, width},
      grad.options().memory_format(
          cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (grad.numel() == 0 || gin.numel() == 0) {
    return gin.zero_();
  }
  auto rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
      "torchcv_roi_align_backward_cpu", [&] {
        const scalar_t* r = rois_c.data_ptr<scalar_t>();
        auto groups = cpu::group_rois<scalar_t>("roi_align_backward", r, K, batch_size);
        auto geo = all_geoms<scalar_t>(r, K, spatial_scale, pooled_height, pooled_width,
            sampling_ratio, aligned);
        if (cl) {
          backward_nhwc<scalar_t>(grad.data_ptr<scalar_t>(), gin.data_ptr<scalar_t>(), geo,
              groups, batch_size, channels, height, width, pooled_height, pooled_width);
        } else {
          backward_nchw<scalar_t>(grad.data_ptr<scalar_t>(), grad.stride(0), grad.stride(1),
              grad.stride(2), grad.stride(3), gin.data_ptr<scalar_t>(), geo, groups, batch_size,
              channels, height, width, pooled_height, pooled_width);
        }
      });
  return gin;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CPU, m) {
  m.impl("roi_align", TORCH_FN(roi_align_forward_cpu));
  m.impl("_roi_align_backward", TORCH_FN(roi_align_backward_cpu));
}

} // namespace torchcv
