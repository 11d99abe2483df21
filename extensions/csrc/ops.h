// Small helpers shared by the CPU and CUDA host code.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace torchcv {

// True when `t` is laid out channels-last (NHWC) and not also plain
// contiguous.  The Python fake (meta) kernels use the same rule, so the
// output strides seen by torch.compile match the real kernels.
inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() &&
      t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline void check_roi_inputs(
    const char* op,
    const at::Tensor& input,
    const at::Tensor& rois,
    int64_t pooled_height,
    int64_t pooled_width) {
  TORCH_CHECK(input.dim() == 4, op, ": input must be a 4d tensor [N, C, H, W], got ",
      input.dim(), "D");
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
      ": rois must have shape [K, 5] (batch_index, x1, y1, x2, y2), got ", rois.sizes());
  TORCH_CHECK(input.scalar_type() == rois.scalar_type(), op,
      ": input and rois must have the same dtype, got ", input.scalar_type(), " and ",
      rois.scalar_type());
  TORCH_CHECK(input.device() == rois.device(), op,
      ": input and rois must be on the same device, got ", input.device(), " and ",
      rois.device());
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0, op,
      ": output_size must be positive, got (", pooled_height, ", ", pooled_width, ")");
}

inline void check_backward_inputs(
    const char* op,
    const at::Tensor& grad,
    const at::Tensor& rois,
    int64_t pooled_height,
    int64_t pooled_width,
    int64_t channels) {
  TORCH_CHECK(grad.dim() == 4, op, ": grad must be a 4d tensor, got ", grad.dim(), "D");
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
      ": rois must have shape [K, 5], got ", rois.sizes());
  TORCH_CHECK(grad.size(0) == rois.size(0) && grad.size(1) == channels &&
          grad.size(2) == pooled_height && grad.size(3) == pooled_width,
      op, ": grad has shape ", grad.sizes(), ", expected [", rois.size(0), ", ", channels, ", ",
      pooled_height, ", ", pooled_width, "]");
  TORCH_CHECK(grad.scalar_type() == rois.scalar_type(), op,
      ": grad and rois must have the same dtype, got ", grad.scalar_type(), " and ",
      rois.scalar_type());
  TORCH_CHECK(grad.device() == rois.device(), op,
      ": grad and rois must be on the same device");
}

} // namespace torchcv
