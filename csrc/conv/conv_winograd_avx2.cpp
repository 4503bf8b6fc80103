// AVX2 + FMA builds of the Winograd row transforms (winograd_rows.h).
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx2 {
namespace {
#include "conv/winograd_rows.h"
}  // namespace

PYCONV_WINO_EXPORT(float)
PYCONV_WINO_EXPORT(double)
#undef PYCONV_WINO_EXPORT

}  // namespace pyconv::avx2
