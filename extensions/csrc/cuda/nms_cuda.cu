// CUDA non-maximum suppression.
//
// 1. sort scores (stable, descending) and gather the boxes in that order;
// 2. nms_mask_kernel: 64x64 tiles, bit j of mask[i][cb] says "box i
//    suppresses box cb*64+j" (only the upper triangle is computed);
// 3. nms_reduce_kernel: one block walks the 64-box column blocks in order;
//    thread 0 resolves the 64 candidates of the block from the diagonal words
//    (in shared memory), then all threads OR the rows of the kept boxes into
//    the "removed" bitmap.  Everything stays on the device; the only host
//    sync is the final nonzero() that sizes the output.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common.h"

namespace torchcv {
namespace {

using detail::tmax;
using detail::tmin;

constexpr int kBlock = 64;

template <typename A>
inline A threshold_for(double t) {
  return static_cast<A>(t);
}
template <>
inline float threshold_for<float>(double t) {
  return detail::float_floor(t);
}

template <typename T, typename A>
__global__ void nms_mask_kernel(
    int n, const T* __restrict__ boxes, A thr, unsigned long long* __restrict__ mask, int col_blocks) {
  const int row_block = blockIdx.y;
  const int col_block = blockIdx.x;
  if (col_block < row_block) {
    return;
  }
  const int row_size = min(n - row_block * kBlock, kBlock);
  const int col_size = min(n - col_block * kBlock, kBlock);
  __shared__ A cb[kBlock * 5];
  const int t = threadIdx.x;
  if (t < col_size) {
    const T* b = boxes + (int64_t)(col_block * kBlock + t) * 4;
    const A x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
    cb[t * 5 + 0] = x1;
    cb[t * 5 + 1] = y1;
    cb[t * 5 + 2] = x2;
    cb[t * 5 + 3] = y2;
    cb[t * 5 + 4] = (x2 - x1) * (y2 - y1);
  }
  __syncthreads();
  if (t < row_size) {
    const int i = row_block * kBlock + t;
    const T* b = boxes + (int64_t)i * 4;
    const A ix1 = b[0], iy1 = b[1], ix2 = b[2], iy2 = b[3];
    const A iarea = (ix2 - ix1) * (iy2 - iy1);
    unsigned long long bits = 0;
    const int start = (row_block == col_block) ? t + 1 : 0;
    for (int j = start; j < col_size; ++j) {
      const A xx1 = tmax(ix1, cb[j * 5 + 0]);
      const A yy1 = tmax(iy1, cb[j * 5 + 1]);
      const A xx2 = tmin(ix2, cb[j * 5 + 2]);
      const A yy2 = tmin(iy2, cb[j * 5 + 3]);
      const A w = tmax(static_cast<A>(0), xx2 - xx1);
      const A h = tmax(static_cast<A>(0), yy2 - yy1);
      const A inter = w * h;
      const A ovr = inter / (iarea + cb[j * 5 + 4] - inter);
      if (ovr > thr) {
        bits |= 1ULL << j;
      }
    }
    mask[(int64_t)i * col_blocks + col_block] = bits;
  }
}

// removed: col_blocks words (shared memory when it fits, else global scratch)
__global__ void nms_reduce_kernel(
    int n,
    int col_blocks,
    const unsigned long long* __restrict__ mask,
    unsigned long long* removed_global,
    bool use_shared,
    uint8_t* __restrict__ keep) {
  extern __shared__ unsigned long long smem[];
  unsigned long long* removed = use_shared ? smem : removed_global;
  __shared__ unsigned long long diag[kBlock];
  __shared__ unsigned long long kept_bits;
  const int tid = threadIdx.x;
  for (int k = tid; k < col_blocks; k += blockDim.x) {
    removed[k] = 0;
  }
  __syncthreads();
  for (int blk = 0; blk < col_blocks; ++blk) {
    const int base = blk * kBlock;
    const int lim = min(kBlock, n - base);
    if (tid < lim) {
      diag[tid] = mask[(int64_t)(base + tid) * col_blocks + blk];
    }
    __syncthreads();
    if (tid == 0) {
      unsigned long long cur = removed[blk];
      unsigned long long kb = 0;
      for (int j = 0; j < lim; ++j) {
        if (!((cur >> j) & 1ULL)) {
          kb |= 1ULL << j;
          cur |= diag[j];
        }
      }
      kept_bits = kb;
    }
    __syncthreads();
    const unsigned long long kb = kept_bits;
    if (tid < lim) {
      keep[base + tid] = (kb >> tid) & 1ULL;
    }
    for (int k = blk + 1 + tid; k < col_blocks; k += blockDim.x) {
      unsigned long long acc = removed[k];
      unsigned long long bits = kb;
      while (bits) {
        const int j = __ffsll(static_cast<long long>(bits)) - 1;
        bits &= bits - 1;
        acc |= mask[(int64_t)(base + j) * col_blocks + k];
      }
      removed[k] = acc;
    }
    __syncthreads();
  }
}

at::Tensor nms_cuda(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(dets.is_cuda(), "nms: boxes must be a CUDA tensor");
  TORCH_CHECK(scores.is_cuda(), "nms: scores must be a CUDA tensor");
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4, "nms: boxes must have shape [N, 4], got ",
      dets.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0),
      "nms: scores must have shape [N] matching boxes, got ", scores.sizes());
  TORCH_CHECK(dets.scalar_type() == scores.scalar_type(),
      "nms: boxes and scores must have the same dtype");
  TORCH_CHECK(dets.device() == scores.device(), "nms: boxes and scores must be on the same device");
  at::cuda::CUDAGuard guard(dets.device());
  const int64_t n64 = dets.size(0);
  if (n64 == 0) {
    return at::empty({0}, dets.options().dtype(at::kLong));
  }
  TORCH_CHECK(n64 < (int64_t)1 << 31, "nms: too many boxes");
  const int n = static_cast<int>(n64);
  auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto boxes_sorted = dets.index_select(0, order).contiguous();
  const int col_blocks = (n + kBlock - 1) / kBlock;
  auto mask = at::empty({(int64_t)n * col_blocks}, dets.options().dtype(at::kLong));
  auto keep = at::empty({n}, dets.options().dtype(at::kByte));
  auto stream = c10::cuda::getCurrentCUDAStream();
  dim3 grid(col_blocks, col_blocks);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dets.scalar_type(), "torchcv_nms_cuda", [&] {
    using A = at::acc_type<scalar_t, true>;
    nms_mask_kernel<scalar_t, A><<<grid, kBlock, 0, stream>>>(n, boxes_sorted.data_ptr<scalar_t>(),
        threshold_for<A>(iou_threshold),
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()), col_blocks);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const size_t smem = (size_t)col_blocks * sizeof(unsigned long long);
  const bool use_shared = smem <= 40 * 1024;
  at::Tensor scratch;
  unsigned long long* removed_global = nullptr;
  if (!use_shared) {
    scratch = at::empty({col_blocks}, dets.options().dtype(at::kLong));
    removed_global = reinterpret_cast<unsigned long long*>(scratch.data_ptr<int64_t>());
  }
  nms_reduce_kernel<<<1, 1024, use_shared ? smem : 0, stream>>>(n, col_blocks,
      reinterpret_cast<const unsigned long long*>(mask.data_ptr<int64_t>()), removed_global,
      use_shared, keep.data_ptr<uint8_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  auto kept = at::nonzero(keep).squeeze(1);
  return order.index_select(0, kept);
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, CUDA, m) {
  m.impl("nms", TORCH_FN(nms_cuda));
}

} // namespace torchcv
