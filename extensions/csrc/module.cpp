// torchcv._C: operator schemas, the Python module stub, and the
// device-independent kernels (Autograd, Autocast).
//
// The device kernels live in cpu/*.cpp and cuda/*.cu and register themselves
// with TORCH_LIBRARY_IMPL(torchcv, CPU/CUDA, ...).
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops.h"

namespace torchcv {

TORCH_LIBRARY(torchcv, m) {
  m.def("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor");
  m.def(
      "batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
      "SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width) -> (Tensor, Tensor)");
  m.def(
      "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
      "SymInt height, SymInt width) -> Tensor");
  m.def("box_area(Tensor boxes) -> Tensor");
  m.def("box_iou(Tensor boxes1, Tensor boxes2) -> Tensor");
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

// ---------------------------------------------------------------- handles
at::Tensor call_roi_align(const at::Tensor& input, const at::Tensor& rois, double scale,
    c10::SymInt ph, c10::SymInt pw, int64_t sr, bool aligned) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torchcv::roi_align", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double,
                           c10::SymInt, c10::SymInt, int64_t, bool)>();
  return op.call(input, rois, scale, std::move(ph), std::move(pw), sr, aligned);
}

at::Tensor call_roi_align_backward(const at::Tensor& grad, const at::Tensor& rois,
    double scale, c10::SymInt ph, c10::SymInt pw, c10::SymInt b, c10::SymInt c,
    c10::SymInt h, c10::SymInt w, int64_t sr, bool aligned) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("torchcv::_roi_align_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, c10::SymInt,
              c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, int64_t,
              bool)>();
  return op.call(grad, rois, scale, std::move(ph), std::move(pw), std::move(b), std::move(c),
      std::move(h), std::move(w), sr, aligned);
}

std::tuple<at::Tensor, at::Tensor> call_roi_pool(const at::Tensor& input,
    const at::Tensor& rois, double scale, c10::SymInt ph, c10::SymInt pw) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torchcv::roi_pool", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&,
                           const at::Tensor&, double, c10::SymInt, c10::SymInt)>();
  return op.call(input, rois, scale, std::move(ph), std::move(pw));
}

at::Tensor call_roi_pool_backward(const at::Tensor& grad, const at::Tensor& rois,
    const at::Tensor& argmax, double scale, c10::SymInt ph, c10::SymInt pw, c10::SymInt b,
    c10::SymInt c, c10::SymInt h, c10::SymInt w) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("torchcv::_roi_pool_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
              c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt, c10::SymInt,
              c10::SymInt)>();
  return op.call(grad, rois, argmax, scale, std::move(ph), std::move(pw), std::move(b),
      std::move(c), std::move(h), std::move(w));
}

at::Tensor call_nms(const at::Tensor& dets, const at::Tensor& scores, double thr) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("torchcv::nms", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return op.call(dets, scores, thr);
}

at::Tensor call_batched_nms(
    const at::Tensor& dets, const at::Tensor& scores, const at::Tensor& idxs, double thr) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("torchcv::batched_nms", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
              double)>();
  return op.call(dets, scores, idxs, thr);
}

// ---------------------------------------------------------------- autograd
class RoIAlignFn : public torch::autograd::Function<RoIAlignFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const Variable& input,
      const Variable& rois, double scale, const c10::SymInt& ph, const c10::SymInt& pw,
      int64_t sr, bool aligned) {
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["ph"] = ph;
    ctx->saved_data["pw"] = pw;
    ctx->saved_data["sr"] = sr;
    ctx->saved_data["aligned"] = aligned;
    ctx->saved_data["b"] = input.sym_size(0);
    ctx->saved_data["c"] = input.sym_size(1);
    ctx->saved_data["h"] = input.sym_size(2);
    ctx->saved_data["w"] = input.sym_size(3);
    ctx->saved_data["cl"] = is_channels_last(input);
    ctx->save_for_backward({rois});
    at::AutoDispatchBelowADInplaceOrView guard;
    return {call_roi_align(input, rois, scale, ph, pw, sr, aligned)};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    auto rois = ctx->get_saved_variables()[0];
    auto& d = ctx->saved_data;
    // the output is contiguous; a channels-last input gets its gradient through the NHWC kernel
    auto grad = d["cl"].toBool() ? grad_output[0].contiguous(at::MemoryFormat::ChannelsLast)
                                 : grad_output[0];
    auto grad_in = call_roi_align_backward(grad, rois, d["scale"].toDouble(),
        d["ph"].toSymInt(), d["pw"].toSymInt(), d["b"].toSymInt(), d["c"].toSymInt(),
        d["h"].toSymInt(), d["w"].toSymInt(), d["sr"].toInt(), d["aligned"].toBool());
    return {grad_in, Variable(), Variable(), Variable(), Variable(), Variable(), Variable()};
  }
};

class RoIAlignBackwardFn : public torch::autograd::Function<RoIAlignBackwardFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const Variable& grad,
      const Variable& rois, double scale, const c10::SymInt& ph, const c10::SymInt& pw,
      const c10::SymInt& b, const c10::SymInt& c, const c10::SymInt& h, const c10::SymInt& w,
      int64_t sr, bool aligned) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return {call_roi_align_backward(grad, rois, scale, ph, pw, b, c, h, w, sr, aligned)};
  }
  static variable_list backward(AutogradContext*, const variable_list&) {
    TORCH_CHECK(false, "torchcv: double backward of roi_align is not supported");
  }
};

class RoIPoolFn : public torch::autograd::Function<RoIPoolFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const Variable& input,
      const Variable& rois, double scale, const c10::SymInt& ph, const c10::SymInt& pw) {
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["ph"] = ph;
    ctx->saved_data["pw"] = pw;
    ctx->saved_data["b"] = input.sym_size(0);
    ctx->saved_data["c"] = input.sym_size(1);
    ctx->saved_data["h"] = input.sym_size(2);
    ctx->saved_data["w"] = input.sym_size(3);
    ctx->saved_data["cl"] = is_channels_last(input);
    at::AutoDispatchBelowADInplaceOrView guard;
    auto res = call_roi_pool(input, rois, scale, ph, pw);
    auto output = std::get<0>(res);
    auto argmax = std::get<1>(res);
    ctx->save_for_backward({rois, argmax});
    ctx->mark_non_differentiable({argmax});
    return {output, argmax};
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    auto saved = ctx->get_saved_variables();
    auto& d = ctx->saved_data;
    auto grad = d["cl"].toBool() ? grad_output[0].contiguous(at::MemoryFormat::ChannelsLast)
                                 : grad_output[0];
    auto grad_in = call_roi_pool_backward(grad, saved[0], saved[1],
        d["scale"].toDouble(), d["ph"].toSymInt(), d["pw"].toSymInt(), d["b"].toSymInt(),
        d["c"].toSymInt(), d["h"].toSymInt(), d["w"].toSymInt());
    return {grad_in, Variable(), Variable(), Variable(), Variable()};
  }
};

class RoIPoolBackwardFn : public torch::autograd::Function<RoIPoolBackwardFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const Variable& grad,
      const Variable& rois, const Variable& argmax, double scale, const c10::SymInt& ph,
      const c10::SymInt& pw, const c10::SymInt& b, const c10::SymInt& c, const c10::SymInt& h,
      const c10::SymInt& w) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return {call_roi_pool_backward(grad, rois, argmax, scale, ph, pw, b, c, h, w)};
  }
  static variable_list backward(AutogradContext*, const variable_list&) {
    TORCH_CHECK(false, "torchcv: double backward of roi_pool is not supported");
  }
};

at::Tensor roi_align_autograd(const at::Tensor& input, const at::Tensor& rois, double scale,
    c10::SymInt ph, c10::SymInt pw, int64_t sr, bool aligned) {
  return RoIAlignFn::apply(input, rois, scale, ph, pw, sr, aligned)[0];
}

at::Tensor roi_align_backward_autograd(const at::Tensor& grad, const at::Tensor& rois,
    double scale, c10::SymInt ph, c10::SymInt pw, c10::SymInt b, c10::SymInt c,
    c10::SymInt h, c10::SymInt w, int64_t sr, bool aligned) {
  return RoIAlignBackwardFn::apply(grad, rois, scale, ph, pw, b, c, h, w, sr, aligned)[0];
}

std::tuple<at::Tensor, at::Tensor> roi_pool_autograd(const at::Tensor& input,
    const at::Tensor& rois, double scale, c10::SymInt ph, c10::SymInt pw) {
  auto r = RoIPoolFn::apply(input, rois, scale, ph, pw);
  return std::make_tuple(r[0], r[1]);
}

at::Tensor roi_pool_backward_autograd(const at::Tensor& grad, const at::Tensor& rois,
    const at::Tensor& argmax, double scale, c10::SymInt ph, c10::SymInt pw, c10::SymInt b,
    c10::SymInt c, c10::SymInt h, c10::SymInt w) {
  return RoIPoolBackwardFn::apply(grad, rois, argmax, scale, ph, pw, b, c, h, w)[0];
}

// ---------------------------------------------------------------- autocast
// Under autocast the ops run in float32; RoI outputs are cast back to the
// input dtype (as torchvision does).
template <c10::DispatchKey key, c10::DeviceType dev>
at::Tensor roi_align_autocast(const at::Tensor& input, const at::Tensor& rois, double scale,
    c10::SymInt ph, c10::SymInt pw, int64_t sr, bool aligned) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  return call_roi_align(at::autocast::cached_cast(at::kFloat, input, dev),
      at::autocast::cached_cast(at::kFloat, rois, dev), scale, std::move(ph), std::move(pw),
      sr, aligned)
      .to(input.scalar_type());
}

template <c10::DispatchKey key, c10::DeviceType dev>
std::tuple<at::Tensor, at::Tensor> roi_pool_autocast(const at::Tensor& input,
    const at::Tensor& rois, double scale, c10::SymInt ph, c10::SymInt pw) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  auto r = call_roi_pool(at::autocast::cached_cast(at::kFloat, input, dev),
      at::autocast::cached_cast(at::kFloat, rois, dev), scale, std::move(ph), std::move(pw));
  return std::make_tuple(std::get<0>(r).to(input.scalar_type()), std::get<1>(r));
}

template <c10::DispatchKey key, c10::DeviceType dev>
at::Tensor nms_autocast(const at::Tensor& dets, const at::Tensor& scores, double thr) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  return call_nms(at::autocast::cached_cast(at::kFloat, dets, dev),
      at::autocast::cached_cast(at::kFloat, scores, dev), thr);
}

template <c10::DispatchKey key, c10::DeviceType dev>
at::Tensor batched_nms_autocast(
    const at::Tensor& dets, const at::Tensor& scores, const at::Tensor& idxs, double thr) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  return call_batched_nms(at::autocast::cached_cast(at::kFloat, dets, dev),
      at::autocast::cached_cast(at::kFloat, scores, dev), idxs, thr);
}

} // namespace

TORCH_LIBRARY_IMPL(torchcv, Autograd, m) {
  m.impl("roi_align", roi_align_autograd);
  m.impl("_roi_align_backward", roi_align_backward_autograd);
  m.impl("roi_pool", roi_pool_autograd);
  m.impl("_roi_pool_backward", roi_pool_backward_autograd);
}

#define TORCHCV_AUTOCAST(KEY, DEV)                                                   \
  TORCH_LIBRARY_IMPL(torchcv, KEY, m) {                                              \
    m.impl("roi_align", roi_align_autocast<c10::DispatchKey::KEY, c10::DeviceType::DEV>); \
    m.impl("roi_pool", roi_pool_autocast<c10::DispatchKey::KEY, c10::DeviceType::DEV>);   \
    m.impl("nms", nms_autocast<c10::DispatchKey::KEY, c10::DeviceType::DEV>);             \
    m.impl("batched_nms",                                                            \
        batched_nms_autocast<c10::DispatchKey::KEY, c10::DeviceType::DEV>);          \
  }

TORCHCV_AUTOCAST(Autocast, CUDA)
TORCHCV_AUTOCAST(AutocastCPU, CPU)

} // namespace torchcv

// ------------------------------------------------------------ Python module
static PyObject* torchcv_with_cuda(PyObject*, PyObject*) {
#ifdef TORCHCV_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

static PyMethodDef torchcv_methods[] = {
    {"with_cuda", torchcv_with_cuda, METH_NOARGS,
        "True if the CUDA kernels were compiled into this build."},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef torchcv_module = {PyModuleDef_HEAD_INIT, "_C",
    "torchcv compiled operators (registered as torch.ops.torchcv.*)", -1, torchcv_methods};

PyMODINIT_FUNC PyInit__C(void) {
  return PyModule_Create(&torchcv_module);
}
