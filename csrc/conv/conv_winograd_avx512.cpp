// AVX-512 builds of the Winograd row transforms (winograd_rows.h): the AVX2 code, and the
// input transform 16 tiles at a time where two whole groups of 8 follow each other.
#include <immintrin.h>

#include <cstdint>

namespace pyconv::avx512 {
namespace {
#include "conv/winograd_rows.h"
}  // namespace

PYCONV_WINO_EXPORT(float)
PYCONV_WINO_EXPORT(double)
#undef PYCONV_WINO_EXPORT

}  // namespace pyconv::avx512
