// Bindings for conv2d and conv_transpose2d (forward and backward).
// conv_transpose2d is run as the backward-data of the forward convolution that
// ConvParams describes, and its gradients as that convolution's forward and
// backward-weight.
#include <pybind11/stl.h>

#include "conv/conv.h"
#include "conv/conv_fast.h"
#include "python/array.h"

namespace pyconv::py_bind {

namespace {

using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

Activation make_act(int kind, double param) {
  if (kind < 0 || kind > static_cast<int>(ActKind::hardswish))
    throw ValueError(str_cat("unknown activation code ", kind));
  return Activation{static_cast<ActKind>(kind), param};
}

void check_shape(const char* op, const char* name, const py::array& a, std::array<int64_t, 4> want) {
  if (shape4(a) != want)
    throw ValueError(str_cat(op, ": ", name, " must have shape (", want[0], ", ", want[1], ", ",
                             want[2], ", ", want[3], "), got (", a.shape(0), ", ", a.shape(1),
                             ", ", a.shape(2), ", ", a.shape(3), ")"));
}

// Runs y = act(conv(x, w) + b), returning y or (y, preact).
template <typename T>
py::object conv2d_fwd(const ConvParams& p, const py::array& x, const py::array& w,
                      const py::object& bias, Activation act, bool want_preact) {
  const char* op = "conv2d";
  auto xv = view4<T>(op, x, "input");
  auto wv = view4<T>(op, w, "weight");
  int64_t blen;
  const T* b = vec_ptr<T>(op, bias, "bias", blen);
  auto y = empty<T>({p.N, p.K, p.P, p.Q});
  py::array_t<T> z;
  if (want_preact) z = empty<T>({p.N, p.K, p.P, p.Q});
  T* yp = y.mutable_data();
  T* zp = want_preact ? z.mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    conv2d_forward<T>(p, xv, wv, b, act, yp, zp);
  }
  if (want_preact) return py::make_tuple(y, z);
  return std::move(y);
}

template <typename T>
py::tuple conv2d_bwd(const ConvParams& p, const py::array& dy, const py::array& x,
                     const py::array& w, std::array<bool, 3> mask) {
  const char* op = "conv2d_backward";
  check_shape(op, "grad_output", dy, {p.N, p.K, p.P, p.Q});
  auto dyv = view4<T>(op, dy, "grad_output");
  auto xv = view4<T>(op, x, "input");
  auto wv = view4<T>(op, w, "weight");
  py::object gi = py::none(), gw = py::none(), gb = py::none();
  T *gip = nullptr, *gwp = nullptr, *gbp = nullptr;
  if (mask[0]) { auto a = empty<T>({p.N, p.C, p.H, p.W}); gip = a.mutable_data(); gi = a; }
  if (mask[1]) { auto a = empty<T>({p.K, p.Cg(), p.R, p.S}); gwp = a.mutable_data(); gw = a; }
  if (mask[2]) { auto a = empty<T>({p.K}); gbp = a.mutable_data(); gb = a; }
  {
    py::gil_scoped_release nogil;
    if (gip) conv2d_backward_data<T>(p, dyv, wv, gip);
    if (gwp) conv2d_backward_weight<T>(p, dyv, xv, gwp);
    if (gbp) conv2d_backward_bias<T>(dyv, gbp);
  }
  return py::make_tuple(gi, gw, gb);
}

template <typename T>
py::object conv_t_fwd(const ConvParams& p, const py::array& x, const py::array& w,
                      const py::object& bias, Activation act, bool want_preact) {
  const char* op = "conv_transpose2d";
  auto xv = view4<T>(op, x, "input");
  auto wv = view4<T>(op, w, "weight");
  int64_t blen;
  const T* b = vec_ptr<T>(op, bias, "bias", blen);
  auto y = empty<T>({p.N, p.C, p.H, p.W});
  py::array_t<T> z;
  if (want_preact) z = empty<T>({p.N, p.C, p.H, p.W});
  T* yp = y.mutable_data();
  T* zp = want_preact ? z.mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    conv2d_backward_data<T>(p, xv, wv, yp);
    if (b || zp || act.kind != ActKind::none) bias_activation<T>(p.N, p.C, p.H * p.W, b, act, yp, zp);
  }
  if (want_preact) return py::make_tuple(y, z);
  return std::move(y);
}

template <typename T>
py::tuple conv_t_bwd(const ConvParams& p, const py::array& dy, const py::array& x,
                     const py::array& w, std::array<bool, 3> mask) {
  const char* op = "conv_transpose2d_backward";
  check_shape(op, "grad_output", dy, {p.N, p.C, p.H, p.W});
  auto dyv = view4<T>(op, dy, "grad_output");
  auto xv = view4<T>(op, x, "input");
  auto wv = view4<T>(op, w, "weight");
  py::object gi = py::none(), gw = py::none(), gb = py::none();
  T *gip = nullptr, *gwp = nullptr, *gbp = nullptr;
  if (mask[0]) { auto a = empty<T>({p.N, p.K, p.P, p.Q}); gip = a.mutable_data(); gi = a; }
  if (mask[1]) { auto a = empty<T>({p.K, p.Cg(), p.R, p.S}); gwp = a.mutable_data(); gw = a; }
  if (mask[2]) { auto a = empty<T>({p.C}); gbp = a.mutable_data(); gb = a; }
  {
    py::gil_scoped_release nogil;
    if (gip) conv2d_forward<T>(p, dyv, wv, nullptr, Activation{}, gip, nullptr);
    if (gwp) conv2d_backward_weight<T>(p, xv, dyv, gwp);
    if (gbp) conv2d_backward_bias<T>(dyv, gbp);
  }
  return py::make_tuple(gi, gw, gb);
}

}  // namespace

void bind_conv(py::module_& m) {
  py::dict acts;
  acts["relu"] = static_cast<int>(ActKind::relu);
  acts["leaky_relu"] = static_cast<int>(ActKind::leaky_relu);
  acts["elu"] = static_cast<int>(ActKind::elu);
  acts["gelu"] = static_cast<int>(ActKind::gelu);
  acts["gelu_tanh"] = static_cast<int>(ActKind::gelu_tanh);
  acts["silu"] = static_cast<int>(ActKind::silu);
  acts["sigmoid"] = static_cast<int>(ActKind::sigmoid);
  acts["tanh"] = static_cast<int>(ActKind::tanh);
  acts["hardswish"] = static_cast<int>(ActKind::hardswish);
  m.attr("ACTIVATIONS") = acts;

  m.def(
      "conv2d_forward",
      [](py::array x, py::array w, py::object bias, I2 stride, I4 pad, I2 dil, int64_t groups,
         int act_kind, double act_param, bool want_preact) -> py::object {
        const char* op = "conv2d";
        DType dt = common_dtype(op, {{&x, "input"}, {&w, "weight"}, {&bias, "bias"}});
        if (x.ndim() != 4 || w.ndim() != 4)
          throw ValueError(str_cat(op, ": expected 4-d input and weight"));
        int64_t blen = bias.is_none() ? -1 : py::reinterpret_borrow<py::array>(bias).size();
        auto in = shape4(x), ws = shape4(w);
        ConvParams p = make_conv2d_params(op, in.data(), ws.data(), blen, stride.data(), pad.data(),
                                          dil.data(), groups);
        Activation act = make_act(act_kind, act_param);
        return dt == DType::f32 ? conv2d_fwd<float>(p, x, w, bias, act, want_preact)
                                : conv2d_fwd<double>(p, x, w, bias, act, want_preact);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("act_kind") = 0, py::arg("act_param") = 0.0,
      py::arg("want_preact") = false);

  m.def(
      "conv2d_backward",
      [](py::array dy, py::array x, py::array w, I2 stride, I4 pad, I2 dil, int64_t groups,
         std::array<bool, 3> mask) -> py::tuple {
        const char* op = "conv2d_backward";
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}, {&w, "weight"}});
        if (x.ndim() != 4 || w.ndim() != 4 || dy.ndim() != 4)
          throw ValueError(str_cat(op, ": expected 4-d grad_output, input and weight"));
        auto in = shape4(x), ws = shape4(w);
        ConvParams p = make_conv2d_params(op, in.data(), ws.data(), -1, stride.data(), pad.data(),
                                          dil.data(), groups);
        return dt == DType::f32 ? conv2d_bwd<float>(p, dy, x, w, mask)
                                : conv2d_bwd<double>(p, dy, x, w, mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("output_mask"));

  m.def(
      "conv_transpose2d_forward",
      [](py::array x, py::array w, py::object bias, I2 stride, I2 pad, I2 out_pad, I2 dil,
         int64_t groups, int act_kind, double act_param, bool want_preact) -> py::object {
        const char* op = "conv_transpose2d";
        DType dt = common_dtype(op, {{&x, "input"}, {&w, "weight"}, {&bias, "bias"}});
        if (x.ndim() != 4 || w.ndim() != 4)
          throw ValueError(str_cat(op, ": expected 4-d input and weight"));
        int64_t blen = bias.is_none() ? -1 : py::reinterpret_borrow<py::array>(bias).size();
        auto in = shape4(x), ws = shape4(w);
        ConvParams p = make_conv_transpose2d_params(op, in.data(), ws.data(), blen, stride.data(),
                                                    pad.data(), out_pad.data(), dil.data(), groups);
        Activation act = make_act(act_kind, act_param);
        return dt == DType::f32 ? conv_t_fwd<float>(p, x, w, bias, act, want_preact)
                                : conv_t_fwd<double>(p, x, w, bias, act, want_preact);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("output_padding"), py::arg("dilation"), py::arg("groups"), py::arg("act_kind") = 0,
      py::arg("act_param") = 0.0, py::arg("want_preact") = false);

  m.def(
      "conv_transpose2d_backward",
      [](py::array dy, py::array x, py::array w, I2 stride, I2 pad, I2 out_pad, I2 dil,
         int64_t groups, std::array<bool, 3> mask) -> py::tuple {
        const char* op = "conv_transpose2d_backward";
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}, {&w, "weight"}});
        if (x.ndim() != 4 || w.ndim() != 4 || dy.ndim() != 4)
          throw ValueError(str_cat(op, ": expected 4-d grad_output, input and weight"));
        auto in = shape4(x), ws = shape4(w);
        ConvParams p = make_conv_transpose2d_params(op, in.data(), ws.data(), -1, stride.data(),
                                                    pad.data(), out_pad.data(), dil.data(), groups);
        return dt == DType::f32 ? conv_t_bwd<float>(p, dy, x, w, mask)
                                : conv_t_bwd<double>(p, dy, x, w, mask);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("stride"),
      py::arg("padding"), py::arg("output_padding"), py::arg("dilation"), py::arg("groups"),
      py::arg("output_mask"));

  // Private: tests force kernel choices on (wherever they apply) or off.
  auto mode = [](const char* op, const std::string& s) {
    if (s == "off") return fast::KernelMode::off;
    if (s == "auto") return fast::KernelMode::auto_;
    if (s == "on") return fast::KernelMode::on;
    throw ValueError(std::string(op) + ": expected 'off', 'auto' or 'on', got '" + s + "'");
  };
  m.def("_set_winograd", [mode](const std::string& s) {
    fast::set_winograd_mode(mode("_set_winograd", s));
  });
  m.def("_set_col2im", [mode](const std::string& s) {
    fast::set_col2im_mode(mode("_set_col2im", s));
  });
  m.def("_set_group_split", [mode](const std::string& s) {
    fast::set_group_split_mode(mode("_set_group_split", s));
  });
  m.def("_set_pixel_rows", [mode](const std::string& s) {
    fast::set_pixel_rows_mode(mode("_set_pixel_rows", s));
  });
  m.def("_set_wgrad_boxes", [mode](const std::string& s) {
    fast::set_wgrad_boxes_mode(mode("_set_wgrad_boxes", s));
  });
  m.def("_set_direct", [mode](const std::string& s) {
    fast::set_direct_mode(mode("_set_direct", s));
  });
  m.def("_set_direct_bd", [mode](const std::string& s) {
    fast::set_direct_bd_mode(mode("_set_direct_bd", s));
  });
  m.def("_direct_calls", [] { return fast::direct_calls(); });
  m.def("_set_tap_skip", [mode](const std::string& s) {
    fast::set_tap_skip_mode(mode("_set_tap_skip", s));
  });
  m.def("_taps_skipped", [] { return fast::taps_skipped(); });
}

}  // namespace pyconv::py_bind
