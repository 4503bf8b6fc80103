// Bindings for the standalone activations. The Python layer passes
// C-contiguous arrays of any shape; outputs have the input's shape.
#include "act/act.h"
#include "python/array.h"

namespace pyconv::py_bind {

namespace {

Activation to_act(const char* op, int kind, double param) {
  if (kind <= 0 || kind > static_cast<int>(ActKind::hardswish))
    throw ValueError(str_cat(op, ": unknown activation code ", kind));
  return Activation{static_cast<ActKind>(kind), param};
}

void need_contiguous(const char* op, const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw ValueError(str_cat(op, ": ", name, " must be C-contiguous"));
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

template <typename T>
py::array fwd(Activation act, const py::array& x) {
  auto y = empty<T>(shape_of(x));
  const T* xp = static_cast<const T*>(x.data());
  T* yp = y.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release nogil;
    activation_forward<T>(act, xp, yp, n);
  }
  return std::move(y);
}

template <typename T>
py::array bwd(Activation act, const py::array& dy, const py::array& v, bool from_output) {
  auto dx = empty<T>(shape_of(v));
  const T* dyp = static_cast<const T*>(dy.data());
  const T* vp = static_cast<const T*>(v.data());
  T* dxp = dx.mutable_data();
  const int64_t n = v.size();
  {
    py::gil_scoped_release nogil;
    if (from_output)
      activation_backward_from_output<T>(act.kind, dyp, vp, dxp, n);
    else
      activation_backward<T>(act, dyp, vp, dxp, n);
  }
  return std::move(dx);
}

}  // namespace

void bind_act(py::module_& m) {
  m.def(
      "activation_forward",
      [](py::array x, int kind, double param, const std::string& op) -> py::array {
        Activation act = to_act(op.c_str(), kind, param);
        DType dt = dtype_of(op.c_str(), x, "input");
        need_contiguous(op.c_str(), x, "input");
        return dt == DType::f32 ? fwd<float>(act, x) : fwd<double>(act, x);
      },
      py::arg("input"), py::arg("act_kind"), py::arg("act_param"), py::arg("op"));

  // from_output: the second array is the forward's output (sigmoid and tanh only).
  m.def(
      "activation_backward",
      [](py::array dy, py::array v, int kind, double param, const std::string& op,
         bool from_output) -> py::array {
        const char* o = op.c_str();
        Activation act = to_act(o, kind, param);
        if (from_output && !grad_from_output_ok(act.kind))
          throw ValueError(str_cat(o, ": the gradient cannot be taken from the output"));
        const char* vname = from_output ? "output" : "input";
        DType dt = common_dtype(o, {{&dy, "grad_output"}, {&v, vname}});
        need_contiguous(o, dy, "grad_output");
        need_contiguous(o, v, vname);
        if (shape_of(dy) != shape_of(v))
          throw ValueError(str_cat(o, ": grad_output and ", vname, " must have the same shape"));
        return dt == DType::f32 ? bwd<float>(act, dy, v, from_output)
                                : bwd<double>(act, dy, v, from_output);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("act_kind"), py::arg("act_param"),
      py::arg("op"), py::arg("from_output") = false);
}

}  // namespace pyconv::py_bind
