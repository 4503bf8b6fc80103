"""Fits the float32 coefficients of act_simd.h's erf pieces (kErfPieces) and prints the
table, with each piece's worst error in float32 evaluation (as the kernel: Horner by
FMA, then min(1, y)). A developer's tool, not part of the build; needs numpy and scipy.

Piece k covers |x| in [(k - 1/2) h, (k + 1/2) h), h = 8/15, up to the kernel's clamp at
3.99, in t = |x| - k h; piece 0 has no constant term (relative accuracy at small |x|).
Weighted least squares (weights 1/ulp) on Chebyshev nodes; coefficients are rounded to
float32 from the highest down, the lower ones refitted after each rounding.

    python csrc/act/fit_erf_pieces.py
"""
import numpy as np
from scipy.special import erf

F32 = np.float32
SCALE, H, CLAMP, DEGREE, PIECES = 1.875, F32(1 / 1.875), F32(3.99), 6, 8


def fma32(a, b, c):
    # float32 FMA: the product of two float32 is exact in float64; one more rounding to float32
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(F32)


def horner32(coef, t):
    y = np.full_like(t, coef[-1])
    for c in coef[-2::-1]:
        y = fma32(y, t, np.full_like(t, c))
    return y


def fit(t, target, weight, fixed0):
    coef = [None] * (DEGREE + 1)
    lo = 1 if fixed0 else 0
    if fixed0:
        coef[0] = F32(0)
    for k in range(DEGREE, lo - 1, -1):
        rest = target - sum(float(coef[j]) * t ** j for j in range(k + 1, DEGREE + 1))
        basis = np.stack([t ** j for j in range(lo, k + 1)], 1)
        sol = np.linalg.lstsq(basis * weight[:, None], rest * weight, rcond=None)[0]
        coef[k] = F32(sol[-1])
    return np.array(coef, dtype=F32)


def main():
    table = []
    for k in range(PIECES):
        center = float(F32(k) * H)
        lo, hi = max(0.0, (k - 0.5) / SCALE), min(float(CLAMP), (k + 0.5) / SCALE)
        m = 4000
        a = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        a = a[a > 1e-6]
        ulp = np.spacing(erf(a).astype(F32)).astype(np.float64)
        coef = fit(a - center, erf(a), 1 / ulp, fixed0=(k == 0))
        grid = [np.linspace(lo, hi, 400001)] + ([np.geomspace(1e-30, hi, 20001)] if k == 0 else [])
        aa = np.unique(np.concatenate(grid).astype(F32))
        aa = aa[(aa >= lo) & (aa <= hi)]
        t = (aa.astype(np.float64) - center).astype(F32)  # the kernel's single-rounding fnma
        y = np.minimum(horner32(coef, t), F32(1)).astype(np.float64)
        ref = erf(aa.astype(np.float64))
        worst = (np.abs(y - ref) / np.spacing(ref.astype(F32)).astype(np.float64)).max()
        print(f"// piece {k}: [{lo:.4f}, {hi:.4f}], worst {worst:.2f} ulp")
        table.append(coef)
    print("alignas(32) constexpr float kErfPieces[7][8] = {")
    for j in range(DEGREE + 1):
        vals = ["0.0f" if c[j] == 0 else f"{float(c[j]):.9g}f" for c in table]
        print("    {" + ", ".join(vals[:4]) + ",\n     " + ", ".join(vals[4:]) + "},")
    print("};")


if __name__ == "__main__":
    main()
