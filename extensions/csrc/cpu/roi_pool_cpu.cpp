// CPU RoIPool (max pooling over quantised bins) forward / backward.
//
// Forward is parallel over RoIs; bin windows are computed once per RoI and
// reused for all channels (NHWC: channel loop innermost and contiguous).
// The argmax (flat h * W + w index inside the plane, -1 for empty bins) is
// saved for the backward, which is parallel over planes / channel blocks with
// exclusive ownership of grad_input (deterministic, no atomics).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cfloat>
#include <vector>

#include "../common.h"
#include "../ops.h"
#include "roi_utils.h"

namespace torchcv {
namespace {

struct Bin {
  int hs, he, ws, we;
};

template <typename T>
void roi_bins(const T* roi, T scale, int64_t H, int64_t W, int64_t PH, int64_t PW,
    std::vector<Bin>& bins) {
  const detail::PoolGeom g = detail::pool_geom<T>(roi, scale);
  bins.resize(PH * PW);
  for (int ph = 0; ph < PH; ++ph) {
    int hs, he;
    detail::pool_bin<T>(ph, g.start_h, g.height, (int)PH, (int)H, hs, he);
    for (int pw = 0; pw < PW; ++pw) {
      int ws, we;
      detail::pool_bin<T>(pw, g.start_w, g.width, (int)PW, (int)W, ws, we);
      bins[ph * PW + pw] = Bin{hs, he, ws, we};
    }
  }
}

// CB channels per pass over a bin window (independent max chains, branch-free
// select).  Per channel: strict '>' in raster order, like the reference.
template <typename T, int CB>
inline void pool_block(const T* in0, int64_t plane, T* o0, int* a0, int64_t oplane,
    const std::vector<Bin>& bins, int64_t W) {
  for (size_t k = 0; k < bins.size(); ++k) {
    const Bin& bn = bins[k];
    const bool empty = (bn.he <= bn.hs) || (bn.we <= bn.ws);
    T mv[CB];
    int mi[CB];
    for (int cc = 0; cc < CB; ++cc) {
      mv[cc] = empty ? (T)0 : (T)(-FLT_MAX);
      mi[cc] = -1;
    }
    for (int h = bn.hs; h < bn.he; ++h) {
      for (int w = bn.ws; w < bn.we; ++w) {
        const int i = h * (int)W + w;
        for (int cc = 0; cc < CB; ++cc) {
          const T v = in0[cc * plane + i];
          const bool gt = v > mv[cc];
          mv[cc] = gt ? v : mv[cc];
          mi[cc] = gt ? i : mi[cc];
        }
      }
    }
    for (int cc = 0; cc < CB; ++cc) {
      o0[cc * oplane + k] = mv[cc];
      a0[cc * oplane + k] = mi[cc];
    }
  }
}

template <typename T>
void forward_nchw(const T* input, const T* rois, T* out, int* amax,
    const cpu::RoiGroups& groups, T scale, int64_t K, int64_t C, int64_t H, int64_t W,
    int64_t PH, int64_t PW) {
  constexpr int CB = 8;
  at::parallel_for(0, K, 1, [&](int64_t n0, int64_t n1) {
    std::vector<Bin> bins;
    for (int64_t n = n0; n < n1; ++n) {
      roi_bins<T>(rois + 5 * n, scale, H, W, PH, PW, bins);
      const int64_t b = groups.batch[n], plane = H * W, nb = PH * PW;
      int64_t c = 0;
      for (; c + CB <= C; c += CB) {
        pool_block<T, CB>(input + (b * C + c) * plane, plane, out + (n * C + c) * nb,
            amax + (n * C + c) * nb, nb, bins, W);
      }
      for (; c < C; ++c) {
        pool_block<T, 1>(input + (b * C + c) * plane, plane, out + (n * C + c) * nb,
            amax + (n * C + c) * nb, nb, bins, W);
      }
    }
  });
}

// Running max/argmax over CB contiguous channels: returns false when there is
// no explicit-SIMD version for T (the caller then runs the scalar loop).
template <typename T, int CB>
inline bool max_chunk(const T*, int, T*, int*) {
  return false;
}

#if defined(__GNUC__)
typedef float tcv_v8f __attribute__((vector_size(32)));
typedef int tcv_v8i __attribute__((vector_size(32)));

template <>
inline bool max_chunk<float, 16>(const float* px, int idx, float* mv, int* mi) {
  for (int h = 0; h < 2; ++h) {
    tcv_v8f v, m;
    tcv_v8i i;
    __builtin_memcpy(&v, px + 8 * h, sizeof(v));
    __builtin_memcpy(&m, mv + 8 * h, sizeof(m));
    __builtin_memcpy(&i, mi + 8 * h, sizeof(i));
    const tcv_v8i gt = v > m;  // false for NaN, like the scalar compare
    m = gt ? v : m;
    const tcv_v8i iv = {idx, idx, idx, idx, idx, idx, idx, idx};
    i = gt ? iv : i;
    __builtin_memcpy(mv + 8 * h, &m, sizeof(m));
    __builtin_memcpy(mi + 8 * h, &i, sizeof(i));
  }
  return true;
}
#endif

template <typename T>
void forward_nhwc(const T* input, const T* rois, T* out, int* amax,
    const cpu::RoiGroups& groups, T scale, int64_t K, int64_t C, int64_t H, int64_t W,
    int64_t PH, int64_t PW) {
  at::parallel_for(0, K, 1, [&](int64_t n0, int64_t n1) {
    std::vector<Bin> bins;
    for (int64_t n = n0; n < n1; ++n) {
      roi_bins<T>(rois + 5 * n, scale, H, W, PH, PW, bins);
      const T* in = input + groups.batch[n] * H * W * C;
      for (int64_t k = 0; k < PH * PW; ++k) {
        const Bin& bn = bins[k];
        const bool empty = (bn.he <= bn.hs) || (bn.we <= bn.ws);
        T* o = out + (n * PH * PW + k) * C;
        int* a = amax + (n * PH * PW + k) * C;
        const T init = empty ? (T)0 : (T)(-FLT_MAX);
        constexpr int CB = 16;
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
          const int nc = (int)std::min<int64_t>(CB, C - c0);
          T mv[CB];
          int mi[CB];
          for (int cc = 0; cc < CB; ++cc) {
            mv[cc] = init;
            mi[cc] = -1;
          }
          for (int h = bn.hs; h < bn.he; ++h) {
            for (int w = bn.ws; w < bn.we; ++w) {
              const T* px = in + ((int64_t)h * W + w) * C + c0;
              const int idx = h * (int)W + w;
              if (nc == CB && max_chunk<T, CB>(px, idx, mv, mi)) {
                // done by the explicit-SIMD specialisation
              } else if (nc == CB) {
                for (int cc = 0; cc < CB; ++cc) {
                  const T v = px[cc];
                  const bool gt = v > mv[cc];
                  mv[cc] = gt ? v : mv[cc];
                  mi[cc] = gt ? idx : mi[cc];
                }
              } else {
                for (int cc = 0; cc < nc; ++cc) {
                  const T v = px[cc];
                  const bool gt = v > mv[cc];
                  mv[cc] = gt ? v : mv[cc];
                  mi[cc] = gt ? idx : mi[cc];
                }
              }
            }
          }
          for (int cc = 0; cc < nc; ++cc) {
            o[c0 + cc] = mv[cc];
            a[c0 + cc] = mi[cc];
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cpu(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width) {
  TORCH_CHECK(input.device().is_cpu(), "roi_pool: input must be a CPU tensor");
  TORCH_CHECK(rois.device().is_cpu(), "roi_pool: rois must be a CPU tensor");
  check_roi_inputs("roi_pool", input, rois, pooled_height, pooled_width);
  const int64_t K = rois.size(0), B = input.size(0), C = input.size(1), H = input.size(2),
                W = input.size(3);
  const bool cl = is_channels_last(input);
  const auto mf = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor output = at::empty({K, C, pooled_height, pooled_width}, input.options(), mf);
  at::Tensor argmax =
      at::empty({K, C, pooled_height, pooled_width}, input.options().dtype(at::kInt), mf);
  if (output.numel() == 0) {
    return std::make_tuple(output.zero_().contiguous(), argmax.zero_().contiguous());
  }
  auto rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
      "torchcv_roi_pool_forward_cpu", [&] {
        const scalar_t* r = rois_c.data_ptr<scalar_t>();
        auto groups = cpu::group_rois<scalar_t>("roi_pool", r, K, B);
        const scalar_t scale = static_cast<scalar_t>(spatial_scale);
        if (cl) {
          auto in = input.contiguous(at::MemoryFormat::ChannelsLast);
          forward_nhwc<scalar_t>(in.data_ptr<scalar_t>(), r, output.data_ptr<scalar_t>(),
              argmax.data_ptr<int>(), groups, scale, K, C, H, W, pooled_height, pooled_width);
        } else {
          auto in = input.contiguous();
          forward_nchw<scalar_t>(in.data_ptr<scalar_t>(), r, output.data_ptr<scalar_t>(),
              argmax.data_ptr<int>(), groups, scale, K, C, H, W, pooled_height, pooled_width);
        }
      });
  // contiguous outputs like torchvision (the backward reads argmax through its strides)
  return std::make_tuple(output.contiguous(), argmax.contiguous());
}

at::Tensor roi_pool_backward_cpu(
    const at::Tensor& grad,
    const at::Tensor& rois,
    const at::Tensor& argmax,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t batch_size,
    int64_t channels,
    int64_t height,
    int64_t width) {
  TORCH_CHECK(grad.device().is_cpu(), "roi_pool_backward: grad must be a CPU tensor");
  TORCH_CHECK(rois.device().is_cpu(), "roi_pool_backward: rois must be a CPU tensor");
  TORCH_CHECK(argmax.device().is_cpu(), "roi_pool_backward: argmax must be a CPU tensor");
  check_backward_inputs("roi_pool_backward", grad, rois, pooled_height, pooled_width, channels);
  TORCH_CHECK(argmax.sizes() == grad.sizes(), "roi_pool_backward: argmax has shape ",
      argmax.sizes(), " but grad has shape ", grad.sizes());
  TORCH_CHECK(argmax.scalar_type() == at::kInt, "roi_pool_backward: argmax must be int32");
  const int64_t K = rois.size(0), C = channels, H = height, W = width;
  const int64_t PH = pooled_height, PW = pooled_width, B = batch_size;
  const bool cl = is_channels_last(grad);
  // every element is zeroed by the worker that owns it (see below)
  at::Tensor gin = at::empty({B, C, H, W},
      grad.options().memory_format(
          cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (grad.numel() == 0 || gin.numel() == 0) {
    return gin.zero_();
  }
  auto rois_c = rois.contiguous();
  const int64_t gsn = grad.stride(0), gsc = grad.stride(1), gsh = grad.stride(2),
                gsw = grad.stride(3);
  const int64_t asn = argmax.stride(0), asc = argmax.stride(1), ash = argmax.stride(2),
                asw = argmax.stride(3);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
      "torchcv_roi_pool_backward_cpu", [&] {
        const scalar_t* r = rois_c.data_ptr<scalar_t>();
        auto groups = cpu::group_rois<scalar_t>("roi_pool_backward", r, K, B);
        const scalar_t* g = grad.data_ptr<scalar_t>();
        const int* am = argmax.data_ptr<int>();
        scalar_t* gi = gin.data_ptr<scalar_t>();
        if (!cl) {
          at::parallel_for(0, B * C, 1, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
              const int64_t c = p / B, b = p % B;
              scalar_t* plane = gi + (b * C + c) * H * W;
              std::fill(plane, plane + H * W, (scalar_t)0);
              for (int64_t q = groups.offset[b]; q < groups.offset[b + 1]; ++q) {
                const int64_t n = groups.list[q];
                const scalar_t* go = g + n * gsn + c * gsc;
                const int* a = am + n * asn + c * asc;
                for (int64_t ph = 0; ph < PH; ++ph) {
                  for (int64_t pw = 0; pw < PW; ++pw) {
                    const int idx = a[ph * ash + pw * asw];
                    if (idx != -1) {
                      plane[idx] += go[ph * gsh + pw * gsw];
                    }
                  }
                }
              }
            }
          });
        } else {
          const int64_t CB = 32;
          const int64_t ncb = (C + CB - 1) / CB;
          at::parallel_for(0, ncb * B, 1, [&](int64_t u0, int64_t u1) {
            for (int64_t u = u0; u < u1; ++u) {
              const int64_t cb = u / B, b = u % B;
              const int64_t c0 = cb * CB, c1 = std::min(C, c0 + CB);
              scalar_t* base = gi + b * H * W * C;
              for (int64_t px = 0; px < H * W; ++px) {
                std::fill(base + px * C + c0, base + px * C + c1, (scalar_t)0);
              }
              for (int64_t q = groups.offset[b]; q < groups.offset[b + 1]; ++q) {
                const int64_t n = groups.list[q];
                for (int64_t ph = 0; ph < PH; ++ph) {
                  for (int64_t pw = 0; pw < PW; ++pw) {
                    const scalar_t* go = g + n * gsn + ph * gsh + pw * gsw;
                    const int* a = am + n * asn + ph * ash + pw * asw;
                    for (int64_t c = c0; c < c1; ++c) {
                      const int idx = a[c * asc];
                      if (idx != -1) {
                        base[(int64_t)idx * C + c] += go[c * gsc];
                      }
                    }
                  }
                }
              }
            }
          });
        }
      });
  return gin;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CPU, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_forward_cpu));
  m.impl("_roi_pool_backward", TORCH_FN(roi_pool_backward_cpu));
}

} // namespace torchcv
