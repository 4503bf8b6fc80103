// pyconv._C: the CPU extension. Converts arrays, releases the GIL, calls
// kernels; each op family binds itself in its own bind_*.cpp.
#include <omp.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/buffer_cache.h"
#include "common/cpu.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace pyconv::py_bind {
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_act(py::module_& m);
}  // namespace pyconv::py_bind

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyconv CPU kernels (private; use pyconv.functional)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyconv::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const pyconv::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw pyconv::ValueError(pyconv::str_cat("set_num_threads: expected a positive count, got ", n));
    pyconv::set_num_threads(n);
  });
  m.def("get_num_threads", &pyconv::num_threads);
  m.def("isa", [] { return pyconv::isa_name(pyconv::active_isa()); },
        "instruction set the CPU kernels use now");
  m.def("best_isa", [] { return pyconv::isa_name(pyconv::best_isa()); });
  m.def("set_isa", [](const std::string& name) {
    pyconv::Isa isa;
    if (name == "scalar") isa = pyconv::Isa::scalar;
    else if (name == "avx2") isa = pyconv::Isa::avx2;
    else if (name == "avx512") isa = pyconv::Isa::avx512;
    else throw pyconv::ValueError("set_isa: expected 'scalar', 'avx2' or 'avx512', got '" + name + "'");
    pyconv::set_isa(isa);
  });
  m.def("_gemm_tile", [](const std::string& dtype, int64_t rows, int64_t cols, bool pixel_rows) {
    namespace g = pyconv::gemm;
    const auto tile = [](const auto& uk) { return py::make_tuple(uk.mr, uk.nr, uk.name); };
    const pyconv::Isa isa = pyconv::active_isa();
    const bool shaped = rows >= 0 && cols >= 0;
    if (dtype == "float32")
      return tile(shaped ? g::ukernel_for_shape<float>(isa, rows, cols, pixel_rows)
                         : g::ukernel_for<float>(isa));
    if (dtype == "float64")
      return tile(shaped ? g::ukernel_for_shape<double>(isa, rows, cols, pixel_rows)
                         : g::ukernel_for<double>(isa));
    throw pyconv::ValueError("_gemm_tile: expected 'float32' or 'float64', got '" + dtype + "'");
  }, py::arg("dtype"), py::arg("rows") = -1, py::arg("cols") = -1, py::arg("pixel_rows") = false,
     "tests: (rows, columns, name) of the GEMM register tile of the active instruction set "
     "(for a rows x cols GEMM where given: ukernel_for_shape; pixel_rows: pixel rows' choice)");
  m.def("_parallel_tasks", [](int64_t total, int threads, int64_t slow_below, double slow_ms) {
    if (total < 0 || threads < 1)
      throw pyconv::ValueError("_parallel_tasks: expected total >= 0 and threads >= 1");
    std::vector<std::atomic<int>> runs(static_cast<size_t>(total));
    std::vector<int> who(static_cast<size_t>(total), -1);
    std::vector<int64_t> seq(static_cast<size_t>(total), -1);  // when each task started
    std::atomic<int64_t> clock{0};
    {
      py::gil_scoped_release nogil;
      pyconv::parallel_tasks(total, threads, [&](int64_t t) {
        runs[t].fetch_add(1);
        who[t] = omp_get_thread_num();
        seq[t] = clock.fetch_add(1);
        if (t < slow_below)
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(slow_ms));
      });
    }
    py::list r, w, q;
    for (int64_t t = 0; t < total; ++t) r.append(runs[t].load()), w.append(who[t]), q.append(seq[t]);
    return py::make_tuple(r, w, q);
  }, "tests: runs parallel_tasks over total tasks on threads (tasks below slow_below sleep "
     "slow_ms each); (runs per task, thread of each task, start order of each task)");
  m.def("_wide_fma_gain", &pyconv::gemm::wide_fma_gain,
        "flops of a 512-bit FMA over a 256-bit one on this CPU (timed once; 1 without AVX-512)");
  // The output buffer cache (common/buffer_cache.h).
  m.def("_cache_info", [] {
    const auto i = pyconv::cache::info();
    py::dict d;
    d["idle_bytes"] = i.idle_bytes;
    d["idle_blocks"] = i.idle_blocks;
    d["limit"] = i.limit;
    d["hits"] = i.hits;
    d["misses"] = i.misses;
    return d;
  });
  m.def("_set_cache_fill", &pyconv::cache::set_fill, "tests: fill new output buffers with a byte (-1: off)");
  m.def("_empty_cache", &pyconv::cache::clear, "frees the idle output buffers");
  m.def("_set_cache_limit", [](int64_t bytes) {
    if (bytes < 0) throw pyconv::ValueError(pyconv::str_cat("_set_cache_limit: expected bytes >= 0, got ", bytes));
    pyconv::cache::set_limit(static_cast<size_t>(bytes));
  });
  pyconv::py_bind::bind_conv(m);
  pyconv::py_bind::bind_pool(m);
  pyconv::py_bind::bind_act(m);
}
