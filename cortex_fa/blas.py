"""BLAS calls of the training step: :func:`gemm`, :func:`matmul`, :func:`gemm_tn_into`, :func:`axpy_into`.

numpy's matmul cannot accumulate into its output, so ``W += alpha * h.T @ d``
costs a GEMM into a temporary plus two passes over a W-sized array; BLAS
does it in one call (C <- alpha A B + beta C). That call comes from scipy,
which ships its *own* OpenBLAS with its own thread pool. Mixing the two
libraries step by step would leave one pool's threads spinning while the
other's work, i.e. more busy threads than cores; so every GEMM of the
training step (forward, deltas, updates) goes through :func:`gemm` and
thus through one library.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas as _blas


def _blas_gemm(*arrays):
    """scipy's ``sgemm``/``dgemm`` if every array has that one dtype, else None."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        return None
    return _blas.sgemm if dtype == np.float32 else _blas.dgemm if dtype == np.float64 else None


def _fortran_view(m):
    """``(array, trans)`` such that ``op(array)`` in Fortran order is the matrix ``m.T``."""
    # a C-ordered m is the Fortran-ordered m.T (no transpose needed); an
    # F-ordered m (e.g. W.T or h.T) is passed as itself with op = transpose.
    return (m, 1) if m.flags.f_contiguous and not m.flags.c_contiguous else (m.T, 0)


def gemm(a, b, out, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """In place :math:`\\mathrm{out} \\leftarrow \\alpha A B + \\beta\\, \\mathrm{out}` for 2-D arrays.

    One BLAS call when the dtypes agree (float32 or float64) and ``out`` is
    C-contiguous; ``a`` and ``b`` may be transposed views (no copies).
    Otherwise the same arithmetic in numpy. ``beta = 0`` ignores ``out``'s
    old contents. Returns ``out``.
    """
    if out.ndim == 2 and out.flags.f_contiguous and not out.flags.c_contiguous:
        gemm(b.T, a.T, out.T, alpha, beta)  # out.T = B^T A^T is C-ordered: the same BLAS call
        return out
    fn = _blas_gemm(a, b, out) if out.flags.c_contiguous and a.ndim == b.ndim == 2 else None
    if fn is None:
        if beta == 0.0:
            if alpha == 1.0 and np.result_type(a, b) == out.dtype:
                return np.matmul(a, b, out=out)
            out[...] = alpha * (a @ b)
            return out
        prod = a @ b
        if beta != 1.0:
            out *= beta
        out += alpha * prod
        return out
    # BLAS is column-major: the C-ordered out is the Fortran-ordered out.T = b.T @ a.T.
    bf, tb = _fortran_view(b)
    af, ta = _fortran_view(a)
    res = fn(alpha, bf, af, beta=beta, c=out.T, trans_a=tb, trans_b=ta, overwrite_c=1)
    if not np.may_share_memory(res, out):  # f2py had to copy (never for contiguous inputs)
        np.copyto(out, res.T)
    return out


def matmul(a, b) -> np.ndarray:
    """``a @ b`` for 2-D arrays through :func:`gemm` (a new C-ordered array)."""
    return gemm(a, b, np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)))


def gemm_tn_into(c, a, b, alpha: float, beta: float) -> np.ndarray:
    """In place :math:`C \\leftarrow \\alpha A^T B + \\beta C` (``a``: (N, m), ``b``: (N, n), ``c``: (m, n)).

    Rounding differs from a separate ``a.T @ b`` followed by ``*``/``+`` in
    the last bit only.
    """
    return gemm(a.T, b, c, alpha, beta)


def axpy_into(y, x, alpha: float) -> np.ndarray:
    """In place :math:`y \\leftarrow y + \\alpha x` for same-shape arrays (one BLAS ``axpy`` if contiguous)."""
    if y.ndim == 2 and y.flags.f_contiguous and x.flags.f_contiguous and not y.flags.c_contiguous:
        axpy_into(y.T, x.T, alpha)  # two column-major arrays: their C-ordered transposes
        return y
    if y.dtype in (np.float32, np.float64) and x.dtype == y.dtype and y.flags.c_contiguous and x.flags.c_contiguous:
        axpy = _blas.daxpy if y.dtype == np.float64 else _blas.saxpy
        res = axpy(x.reshape(-1), y.reshape(-1), a=alpha)
        if not np.may_share_memory(res, y):
            np.copyto(y, res.reshape(y.shape))
        return y
    y += alpha * x
    return y
