// CUDA RoIAlign forward / backward (NCHW and channels-last).
//
// Forward: one thread per output element; for channels-last the channel is
// the fastest-varying thread index so reads are coalesced.
// Backward, two variants:
//   * default: one thread per grad_output element, atomicAdd into grad_input;
//   * deterministic (torch.use_deterministic_algorithms(True)): one thread
//     per (image, 16x16 pixel tile, channel) that owns its tile of
//     grad_input and walks that image's RoIs in ascending order, so every
//     grad_input element is accumulated in a fixed order without atomics
//     (the same order as the CPU kernel, hence the same bits).
#include <ATen/ATen.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common.h"
#include "../ops.h"

namespace torchcv {
namespace {

using detail::AlignGeom;
using detail::AxisSample;

constexpr int kThreads = 256;
constexpr int kTile = 16;

inline int blocks_for(int64_t total) {
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20));
}

template <typename T, bool CL>
__global__ void roi_align_forward_kernel(
    int64_t total,
    const T* __restrict__ input,
    const T* __restrict__ rois,
    T* __restrict__ out,
    T scale,
    int B,
    int C,
    int H,
    int W,
    int PH,
    int PW,
    int sr,
    bool aligned) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)blockDim.x * gridDim.x) {
    int64_t t = idx;
    int c, ph, pw;
    if (CL) {
      c = t % C; t /= C; pw = t % PW; t /= PW; ph = t % PH; t /= PH;
    } else {
      pw = t % PW; t /= PW; ph = t % PH; t /= PH; c = t % C; t /= C;
    }
    const int64_t n = t;
    const AlignGeom<T> g = detail::align_geom<T>(rois + n * 5, scale, aligned, PH, PW, sr);
    if (g.batch < 0 || g.batch >= B) {
      out[idx] = (T)0;
      continue;
    }
    const T* in;
    int64_t pix;
    if (CL) {
      in = input + g.batch * H * W * (int64_t)C + c;
      pix = C;
    } else {
      in = input + (g.batch * C + c) * (int64_t)H * W;
      pix = 1;
    }
    T val = 0.;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const AxisSample<T> y = detail::axis_sample<T>(
          detail::sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h), H);
      for (int ix = 0; ix < g.grid_w; ++ix) {
        const AxisSample<T> x = detail::axis_sample<T>(
            detail::sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w), W);
        int64_t p1 = 0, p2 = 0, p3 = 0, p4 = 0;
        T w1 = 0, w2 = 0, w3 = 0, w4 = 0;
        if (y.valid && x.valid) {
          p1 = ((int64_t)y.lo * W + x.lo) * pix;
          p2 = ((int64_t)y.lo * W + x.hi) * pix;
          p3 = ((int64_t)y.hi * W + x.lo) * pix;
          p4 = ((int64_t)y.hi * W + x.hi) * pix;
          w1 = y.h * x.h;
          w2 = y.h * x.l;
          w3 = y.l * x.h;
          w4 = y.l * x.l;
        }
        val += w1 * in[p1] + w2 * in[p2] + w3 * in[p3] + w4 * in[p4];
      }
    }
    val /= g.count;
    out[idx] = val;
  }
}

template <typename T, bool CL>
__global__ void roi_align_backward_atomic_kernel(
    int64_t total,
    const T* __restrict__ grad,
    int64_t sn,
    int64_t sc,
    int64_t sh,
    int64_t sw,
    const T* __restrict__ rois,
    T* __restrict__ gin,
    T scale,
    int B,
    int C,
    int H,
    int W,
    int PH,
    int PW,
    int sr,
    bool aligned) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)blockDim.x * gridDim.x) {
    int64_t t = idx;
    int c, ph, pw;
    if (CL) {
      c = t % C; t /= C; pw = t % PW; t /= PW; ph = t % PH; t /= PH;
    } else {
      pw = t % PW; t /= PW; ph = t % PH; t /= PH; c = t % C; t /= C;
    }
    const int64_t n = t;
    const AlignGeom<T> g = detail::align_geom<T>(rois + n * 5, scale, aligned, PH, PW, sr);
    if (g.batch < 0 || g.batch >= B) {
      continue;
    }
    T* base;
    int64_t pix;
    if (CL) {
      base = gin + g.batch * H * W * (int64_t)C + c;
      pix = C;
    } else {
      base = gin + (g.batch * C + c) * (int64_t)H * W;
      pix = 1;
    }
    const T gv = grad[n * sn + c * sc + ph * sh + pw * sw];
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const AxisSample<T> y = detail::axis_sample<T>(
          detail::sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h), H);
      if (!y.valid) continue;
      for (int ix = 0; ix < g.grid_w; ++ix) {
        const AxisSample<T> x = detail::axis_sample<T>(
            detail::sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w), W);
        if (!x.valid) continue;
        const T g1 = gv * (y.h * x.h) / g.count_bwd;
        const T g2 = gv * (y.h * x.l) / g.count_bwd;
        const T g3 = gv * (y.l * x.h) / g.count_bwd;
        const T g4 = gv * (y.l * x.l) / g.count_bwd;
        gpuAtomicAdd(base + ((int64_t)y.lo * W + x.lo) * pix, g1);
        gpuAtomicAdd(base + ((int64_t)y.lo * W + x.hi) * pix, g2);
        gpuAtomicAdd(base + ((int64_t)y.hi * W + x.lo) * pix, g3);
        gpuAtomicAdd(base + ((int64_t)y.hi * W + x.hi) * pix, g4);
      }
    }
  }
}

template <typename T, bool CL>
__global__ void roi_align_backward_det_kernel(
    int64_t total,
    const T* __restrict__ grad,
    int64_t sn,
    int64_t sc,
    int64_t sh,
    int64_t sw,
    const T* __restrict__ rois,
    const int64_t* __restrict__ perm,     // RoI indices sorted by image (stable)
    const int64_t* __restrict__ offsets,  // [B + 1]
    T* __restrict__ gin,
    T scale,
    int C,
    int H,
    int W,
    int PH,
    int PW,
    int sr,
    bool aligned,
    int tiles_x,
    int tiles_y) {
  using Wd = typename detail::Wide<T>::type;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)blockDim.x * gridDim.x) {
    int64_t t = idx;
    const int c = t % C; t /= C;
    const int tx = t % tiles_x; t /= tiles_x;
    const int ty = t % tiles_y; t /= tiles_y;
    const int64_t b = t;
    const int y0 = ty * kTile, y1 = min(y0 + kTile, H);
    const int x0 = tx * kTile, x1 = min(x0 + kTile, W);
    T* base;
    int64_t pix;
    if (CL) {
      base = gin + b * H * W * (int64_t)C + c;
      pix = C;
    } else {
      base = gin + (b * C + c) * (int64_t)H * W;
      pix = 1;
    }
    for (int64_t k = offsets[b]; k < offsets[b + 1]; ++k) {
      const int64_t n = perm[k];
      const AlignGeom<T> g = detail::align_geom<T>(rois + n * 5, scale, aligned, PH, PW, sr);
      if (g.grid_h <= 0 || g.grid_w <= 0) continue;
      // Conservative footprint test: every sample coordinate lies between
      // start and start + bins * bin (up to rounding), and clamping only maps
      // it into [0, size - 1]; taps are floor(c) and floor(c) + 1.  With NaN
      // geometry every sample is invalid, so skipping is harmless.
      {
        const Wd ya = static_cast<Wd>(g.start_h), yb = ya + static_cast<Wd>(g.bin_h) * PH;
        const Wd xa = static_cast<Wd>(g.start_w), xb = xa + static_cast<Wd>(g.bin_w) * PW;
        const Wd rmin = fmin(fmax(floor(fmin(ya, yb)) - 1, (Wd)0), (Wd)(H - 1));
        const Wd rmax = fmin(fmax(floor(fmax(ya, yb)) + 2, (Wd)0), (Wd)(H - 1));
        const Wd cmin = fmin(fmax(floor(fmin(xa, xb)) - 1, (Wd)0), (Wd)(W - 1));
        const Wd cmax = fmin(fmax(floor(fmax(xa, xb)) + 2, (Wd)0), (Wd)(W - 1));
        if (rmax < (Wd)y0 || rmin >= (Wd)y1 || cmax < (Wd)x0 || cmin >= (Wd)x1) continue;
      }
      const T* go = grad + n * sn + c * sc;
      for (int ph = 0; ph < PH; ++ph) {
        for (int pw = 0; pw < PW; ++pw) {
          bool have_g = false;
          T gv = 0;
          for (int iy = 0; iy < g.grid_h; ++iy) {
            const AxisSample<T> y = detail::axis_sample<T>(
                detail::sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h), H);
            if (!y.valid) continue;
            const bool lo_in = y.lo >= y0 && y.lo < y1;
            const bool hi_in = y.hi >= y0 && y.hi < y1;
            if (!lo_in && !hi_in) continue;
            for (int ix = 0; ix < g.grid_w; ++ix) {
              const AxisSample<T> x = detail::axis_sample<T>(
                  detail::sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w), W);
              if (!x.valid) continue;
              const bool xl_in = x.lo >= x0 && x.lo < x1;
              const bool xh_in = x.hi >= x0 && x.hi < x1;
              if (!xl_in && !xh_in) continue;
              if (!have_g) {
                gv = go[ph * sh + pw * sw];
                have_g = true;
              }
              if (lo_in && xl_in)
                base[((int64_t)y.lo * W + x.lo) * pix] += gv * (y.h * x.h) / g.count_bwd;
              if (lo_in && xh_in)
                base[((int64_t)y.lo * W + x.hi) * pix] += gv * (y.h * x.l) / g.count_bwd;
              if (hi_in && xl_in)
                base[((int64_t)y.hi * W + x.lo) * pix] += gv * (y.l * x.h) / g.count_bwd;
              if (hi_in && xh_in)
                base[((int64_t)y.hi * W + x.hi) * pix] += gv * (y.l * x.l) / g.count_bwd;
            }
          }
        }
      }
    }
  }
}

at::Tensor roi_align_forward_cuda(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t sampling_ratio,
    bool aligned) {
  TORCH_CHECK(input.is_cuda(), "roi_align: input must be a CUDA tensor");
  TORCH_CHECK(rois.is_cuda(), "roi_align: rois must be a CUDA tensor");
  check_roi_inputs("roi_align", input, rois, pooled_height, pooled_width);
  at::cuda::CUDAGuard guard(input.device());
  const int64_t K = rois.size(0);
  const int B = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const bool cl = is_channels_last(input);
  const auto mf = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor output =
      at::empty({K, C, pooled_height, pooled_width}, input.options().memory_format(mf));
  if (output.numel() == 0) {
    return output.zero_().contiguous();
  }
  auto in = input.contiguous(mf);
  auto r = rois.contiguous();
  const int64_t total = output.numel();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
      "torchcv_roi_align_forward_cuda", [&] {
        const scalar_t scale = static_cast<scalar_t>(spatial_scale);
        if (cl) {
          roi_align_forward_kernel<scalar_t, true><<<blocks_for(total), kThreads, 0, stream>>>(
              total, in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
              scale, B, C, H, W, pooled_height, pooled_width, sampling_ratio, aligned);
        } else {
          roi_align_forward_kernel<scalar_t, false><<<blocks_for(total), kThreads, 0, stream>>>(
              total, in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
              scale, B, C, H, W, pooled_height, pooled_width, sampling_ratio, aligned);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output.contiguous();  // torchvision's layout whatever the input's
}

at::Tensor roi_align_backward_cuda(
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
  TORCH_CHECK(grad.is_cuda(), "roi_align_backward: grad must be a CUDA tensor");
  TORCH_CHECK(rois.is_cuda(), "roi_align_backward: rois must be a CUDA tensor");
  check_backward_inputs("roi_align_backward", grad, rois, pooled_height, pooled_width, channels);
  at::cuda::CUDAGuard guard(grad.device());
  const bool cl = is_channels_last(grad);
  const auto mf = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor gin =
      at::zeros({batch_size, channels, height, width}, grad.options().memory_format(mf));
  if (grad.numel() == 0 || gin.numel() == 0) {
    return gin;
  }
  auto r = rois.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int B = batch_size, C = channels, H = height, W = width;
  const int PH = pooled_height, PW = pooled_width;
  const bool det = at::globalContext().deterministicAlgorithms();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
      "torchcv_roi_align_backward_cuda", [&] {
        const scalar_t scale = static_cast<scalar_t>(spatial_scale);
        if (!det) {
          const int64_t total = grad.numel();
          // thread index order follows grad's layout for coalesced reads
          if (cl) {
            roi_align_backward_atomic_kernel<scalar_t, true>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    r.data_ptr<scalar_t>(), gin.data_ptr<scalar_t>(), scale, B, C, H, W, PH, PW,
                    sampling_ratio, aligned);
          } else {
            roi_align_backward_atomic_kernel<scalar_t, false>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    r.data_ptr<scalar_t>(), gin.data_ptr<scalar_t>(), scale, B, C, H, W, PH, PW,
                    sampling_ratio, aligned);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          // group RoIs by image on the device (no host sync)
          auto bidx = r.select(1, 0).to(at::kLong);
          auto sorted = bidx.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
          auto perm = std::get<1>(sorted).contiguous();
          auto offsets = at::searchsorted(std::get<0>(sorted),
              at::arange(B + 1, bidx.options())).contiguous();
          const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
          const int64_t total = (int64_t)B * tiles_y * tiles_x * C;
          if (cl) {
            roi_align_backward_det_kernel<scalar_t, true>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    r.data_ptr<scalar_t>(), perm.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                    gin.data_ptr<scalar_t>(), scale, C, H, W, PH, PW, sampling_ratio, aligned,
                    tiles_x, tiles_y);
          } else {
            roi_align_backward_det_kernel<scalar_t, false>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    r.data_ptr<scalar_t>(), perm.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                    gin.data_ptr<scalar_t>(), scale, C, H, W, PH, PW, sampling_ratio, aligned,
                    tiles_x, tiles_y);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
  return gin;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CUDA, m) {
  m.impl("roi_align", TORCH_FN(roi_align_forward_cuda));
  m.impl("_roi_align_backward", TORCH_FN(roi_align_backward_cuda));
}

} // namespace torchcv
