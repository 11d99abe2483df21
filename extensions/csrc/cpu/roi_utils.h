// CPU helpers for the RoI kernels: batch-index validation and grouping of
// RoIs by image (ascending RoI index inside each image, which fixes the
// accumulation order of the backward passes).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace torchcv {
namespace cpu {

struct RoiGroups {
  std::vector<int64_t> batch;   // batch index of every RoI
  std::vector<int64_t> offset;  // size B + 1
  std::vector<int64_t> list;    // RoI indices grouped by image, ascending
};

template <typename T>
RoiGroups group_rois(const char* op, const T* rois, int64_t K, int64_t B) {
  RoiGroups g;
  g.batch.resize(K);
  g.offset.assign(B + 1, 0);
  for (int64_t n = 0; n < K; ++n) {
    const T v = rois[5 * n];
    const bool ok = (v >= (T)0) && (v < static_cast<T>(B));
    TORCH_CHECK(ok, op, ": rois[", n, ", 0] (the batch index) is ", static_cast<double>(v),
        ", which is not a valid index for an input batch of size ", B);
    int64_t b = static_cast<int64_t>(v);
    TORCH_CHECK(b >= 0 && b < B, op, ": rois[", n, ", 0] = ", static_cast<double>(v),
        " is not a valid batch index for batch size ", B);
    g.batch[n] = b;
    g.offset[b + 1] += 1;
  }
  for (int64_t b = 0; b < B; ++b) {
    g.offset[b + 1] += g.offset[b];
  }
  g.list.resize(K);
  std::vector<int64_t> fill(g.offset.begin(), g.offset.end() - 1);
  for (int64_t n = 0; n < K; ++n) {
    g.list[fill[g.batch[n]]++] = n;
  }
  return g;
}

} // namespace cpu
} // namespace torchcv
