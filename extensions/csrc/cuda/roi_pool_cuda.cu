// CUDA RoIPool forward / backward (NCHW and channels-last).
//
// Forward: one thread per output element, saves the argmax (flat h * W + w
// index in the plane, -1 for empty bins).  Backward: atomicAdd scatter, or,
// under torch.use_deterministic_algorithms(True), a tile-owning gather like
// the RoIAlign one (fixed accumulation order, no atomics).
#include <ATen/ATen.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cfloat>

#include "../common.h"
#include "../ops.h"

namespace torchcv {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 16;

inline int blocks_for(int64_t total) {
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 1 << 20));
}

template <typename T, bool CL>
__global__ void roi_pool_forward_kernel(
    int64_t total,
    const T* __restrict__ input,
    const T* __restrict__ rois,
    T* __restrict__ out,
    int* __restrict__ amax,
    T scale,
    int B,
    int C,
    int H,
    int W,
    int PH,
    int PW) {
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
    const detail::PoolGeom g = detail::pool_geom<T>(rois + n * 5, scale);
    if (g.batch < 0 || g.batch >= B) {
      out[idx] = (T)0;
      amax[idx] = -1;
      continue;
    }
    int hs, he, ws, we;
    detail::pool_bin<T>(ph, g.start_h, g.height, PH, H, hs, he);
    detail::pool_bin<T>(pw, g.start_w, g.width, PW, W, ws, we);
    const bool empty = (he <= hs) || (we <= ws);
    const T* in;
    int64_t pix;
    if (CL) {
      in = input + g.batch * H * W * (int64_t)C + c;
      pix = C;
    } else {
      in = input + (g.batch * C + c) * (int64_t)H * W;
      pix = 1;
    }
    T maxval = empty ? (T)0 : (T)(-FLT_MAX);
    int maxidx = -1;
    for (int h = hs; h < he; ++h) {
      for (int w = ws; w < we; ++w) {
        const int i = h * W + w;
        const T v = in[(int64_t)i * pix];
        if (v > maxval) {
          maxval = v;
          maxidx = i;
        }
      }
    }
    out[idx] = maxval;
    amax[idx] = maxidx;
  }
}

template <typename T, bool CL>
__global__ void roi_pool_backward_atomic_kernel(
    int64_t total,
    const T* __restrict__ grad,
    int64_t gsn, int64_t gsc, int64_t gsh, int64_t gsw,
    const int* __restrict__ amax,
    int64_t asn, int64_t asc, int64_t ash, int64_t asw,
    const T* __restrict__ rois,
    T* __restrict__ gin,
    int B, int C, int H, int W, int PH, int PW) {
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
    const int64_t b = static_cast<int64_t>(rois[n * 5]);
    if (b < 0 || b >= B) continue;
    const int a = amax[n * asn + c * asc + ph * ash + pw * asw];
    if (a == -1) continue;
    T* dst = CL ? gin + (b * H * W + a) * (int64_t)C + c : gin + (b * C + c) * (int64_t)H * W + a;
    gpuAtomicAdd(dst, grad[n * gsn + c * gsc + ph * gsh + pw * gsw]);
  }
}

template <typename T, bool CL>
__global__ void roi_pool_backward_det_kernel(
    int64_t total,
    const T* __restrict__ grad,
    int64_t gsn, int64_t gsc, int64_t gsh, int64_t gsw,
    const int* __restrict__ amax,
    int64_t asn, int64_t asc, int64_t ash, int64_t asw,
    const T* __restrict__ rois,
    const int64_t* __restrict__ perm,
    const int64_t* __restrict__ offsets,
    T* __restrict__ gin,
    T scale,
    int C, int H, int W, int PH, int PW, int tiles_x, int tiles_y) {
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)blockDim.x * gridDim.x) {
    int64_t t = idx;
    const int c = t % C; t /= C;
    const int tx = t % tiles_x; t /= tiles_x;
    const int ty = t % tiles_y; t /= tiles_y;
    const int64_t b = t;
    const int y0 = ty * kTile, y1 = min(y0 + kTile, H);
    const int x0 = tx * kTile, x1 = min(x0 + kTile, W);
    for (int64_t k = offsets[b]; k < offsets[b + 1]; ++k) {
      const int64_t n = perm[k];
      const detail::PoolGeom g = detail::pool_geom<T>(rois + n * 5, scale);
      // bins cover [start, start + size) clipped to the map
      if (g.start_h + g.height + 1 < y0 || g.start_h - 1 >= y1 ||
          g.start_w + g.width + 1 < x0 || g.start_w - 1 >= x1) {
        continue;
      }
      for (int ph = 0; ph < PH; ++ph) {
        int hs, he;
        detail::pool_bin<T>(ph, g.start_h, g.height, PH, H, hs, he);
        if (he <= y0 || hs >= y1) continue;
        for (int pw = 0; pw < PW; ++pw) {
          int ws, we;
          detail::pool_bin<T>(pw, g.start_w, g.width, PW, W, ws, we);
          if (we <= x0 || ws >= x1) continue;
          const int a = amax[n * asn + c * asc + ph * ash + pw * asw];
          if (a == -1) continue;
          const int ah = a / W, aw = a % W;
          if (ah < y0 || ah >= y1 || aw < x0 || aw >= x1) continue;
          T* dst = CL ? gin + (b * H * W + a) * (int64_t)C + c
                      : gin + (b * C + c) * (int64_t)H * W + a;
          *dst += grad[n * gsn + c * gsc + ph * gsh + pw * gsw];
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cuda(
    const at::Tensor& input,
    const at::Tensor& rois,
    double spatial_scale,
    int64_t pooled_height,
    int64_t pooled_width) {
  TORCH_CHECK(input.is_cuda(), "roi_pool: input must be a CUDA tensor");
  TORCH_CHECK(rois.is_cuda(), "roi_pool: rois must be a CUDA tensor");
  check_roi_inputs("roi_pool", input, rois, pooled_height, pooled_width);
  at::cuda::CUDAGuard guard(input.device());
  const int64_t K = rois.size(0);
  const int B = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const bool cl = is_channels_last(input);
  const auto mf = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor output =
      at::empty({K, C, pooled_height, pooled_width}, input.options().memory_format(mf));
  at::Tensor argmax = at::empty(
      {K, C, pooled_height, pooled_width}, input.options().dtype(at::kInt).memory_format(mf));
  if (output.numel() == 0) {
    return std::make_tuple(output.zero_().contiguous(), argmax.zero_().contiguous());
  }
  auto in = input.contiguous(mf);
  auto r = rois.contiguous();
  const int64_t total = output.numel();
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
      "torchcv_roi_pool_forward_cuda", [&] {
        const scalar_t scale = static_cast<scalar_t>(spatial_scale);
        if (cl) {
          roi_pool_forward_kernel<scalar_t, true><<<blocks_for(total), kThreads, 0, stream>>>(
              total, in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
              argmax.data_ptr<int>(), scale, B, C, H, W, pooled_height, pooled_width);
        } else {
          roi_pool_forward_kernel<scalar_t, false><<<blocks_for(total), kThreads, 0, stream>>>(
              total, in.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
              argmax.data_ptr<int>(), scale, B, C, H, W, pooled_height, pooled_width);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return std::make_tuple(output.contiguous(), argmax.contiguous());  // torchvision's layout
}

at::Tensor roi_pool_backward_cuda(
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
  TORCH_CHECK(grad.is_cuda(), "roi_pool_backward: grad must be a CUDA tensor");
  TORCH_CHECK(rois.is_cuda(), "roi_pool_backward: rois must be a CUDA tensor");
  TORCH_CHECK(argmax.is_cuda(), "roi_pool_backward: argmax must be a CUDA tensor");
  check_backward_inputs("roi_pool_backward", grad, rois, pooled_height, pooled_width, channels);
  TORCH_CHECK(argmax.sizes() == grad.sizes() && argmax.scalar_type() == at::kInt,
      "roi_pool_backward: argmax must be an int32 tensor shaped like grad");
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
      "torchcv_roi_pool_backward_cuda", [&] {
        if (!det) {
          const int64_t total = grad.numel();
          if (cl) {
            roi_pool_backward_atomic_kernel<scalar_t, true>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    argmax.data_ptr<int>(), argmax.stride(0), argmax.stride(1), argmax.stride(2),
                    argmax.stride(3), r.data_ptr<scalar_t>(), gin.data_ptr<scalar_t>(), B, C, H,
                    W, PH, PW);
          } else {
            roi_pool_backward_atomic_kernel<scalar_t, false>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    argmax.data_ptr<int>(), argmax.stride(0), argmax.stride(1), argmax.stride(2),
                    argmax.stride(3), r.data_ptr<scalar_t>(), gin.data_ptr<scalar_t>(), B, C, H,
                    W, PH, PW);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          auto bidx = r.select(1, 0).to(at::kLong);
          auto sorted = bidx.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
          auto perm = std::get<1>(sorted).contiguous();
          auto offsets = at::searchsorted(std::get<0>(sorted),
              at::arange(B + 1, bidx.options())).contiguous();
          const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
          const int64_t total = (int64_t)B * tiles_y * tiles_x * C;
          const scalar_t scale = static_cast<scalar_t>(spatial_scale);
          if (cl) {
            roi_pool_backward_det_kernel<scalar_t, true>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    argmax.data_ptr<int>(), argmax.stride(0), argmax.stride(1), argmax.stride(2),
                    argmax.stride(3), r.data_ptr<scalar_t>(), perm.data_ptr<int64_t>(),
                    offsets.data_ptr<int64_t>(), gin.data_ptr<scalar_t>(), scale, C, H, W, PH,
                    PW, tiles_x, tiles_y);
          } else {
            roi_pool_backward_det_kernel<scalar_t, false>
                <<<blocks_for(total), kThreads, 0, stream>>>(total, grad.data_ptr<scalar_t>(),
                    grad.stride(0), grad.stride(1), grad.stride(2), grad.stride(3),
                    argmax.data_ptr<int>(), argmax.stride(0), argmax.stride(1), argmax.stride(2),
                    argmax.stride(3), r.data_ptr<scalar_t>(), perm.data_ptr<int64_t>(),
                    offsets.data_ptr<int64_t>(), gin.data_ptr<scalar_t>(), scale, C, H, W, PH,
                    PW, tiles_x, tiles_y);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
  return gin;
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CUDA, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_forward_cuda));
  m.impl("_roi_pool_backward", TORCH_FN(roi_pool_backward_cuda));
}

} // namespace torchcv
