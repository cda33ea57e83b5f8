"""Argument checking and shape arithmetic shared by the reference and the numba kernels.

Both kernel sets call these, so they reject the same inputs with the same messages and agree on
output shapes by construction; only the arithmetic differs between them.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np

from qsim.errors import QsimError

# int32 inputs are left out: their products would not leave the int64 working sum any headroom.
INT_DTYPES = (np.int8, np.uint8, np.int16, np.uint16)
OVERFLOW_MODES = ("wrap", "saturate")
# The kernels sum exactly in int64 before wrapping, so the modelled accumulator must leave
# headroom in 64 bits for the exact sum of any realistic layer.
MIN_ACC_BITS, MAX_ACC_BITS = 2, 62


def _thread_count_functions():
    """(get, set) of numba's thread count without the process lock that ``numba.get_num_threads``
    and ``set_num_threads`` take on every call (it cost up to ~0.1 ms per call on a loaded machine,
    twice per kernel); the public functions where numba's internals differ."""
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
        get, set_ = parallel._get_num_threads, parallel._set_num_threads
        if callable(get) and callable(set_) and get() >= 1:
            return get, set_
    except (ImportError, AttributeError):  # pragma: no cover - another numba layout
        pass
    return numba.get_num_threads, numba.set_num_threads


_THREAD_COUNT: list = []


def thread_count_functions():
    """(get, set) of numba's thread count, the lock-free pair where numba has it (see
    ``_thread_count_functions``); numba's thread pool starts on the first call."""
    if not _THREAD_COUNT:
        _THREAD_COUNT.extend(_thread_count_functions())
    return _THREAD_COUNT[0], _THREAD_COUNT[1]


@contextmanager
def serial_below(work: int, limit: int):
    """Run the enclosed numba kernels on one thread when ``work`` < ``limit``: waking a passive
    worker thread costs more than a small kernel saves (under load, a scheduler slice: ~1-4 ms per
    parallel region measured at load 10 on 2 cores, for copies that take 20 us)."""
    get, set_ = thread_count_functions()
    saved = get()
    if work >= limit or saved <= 1:
        yield
        return
    set_(1)
    try:
        yield
    finally:
        set_(saved)


class KernelInputError(QsimError, ValueError):
    """A kernel was called with inconsistent shapes, dtypes or parameters."""


def acc_range(acc_bits: int) -> tuple[int, int]:
    """The signed two's-complement range of an acc_bits accumulator."""
    return -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1


def check_acc(acc_bits, overflow) -> tuple[int, int, bool]:
    """Validate accumulator width and overflow mode; return (lo, hi, saturate)."""
    if not isinstance(acc_bits, (int, np.integer)) or not MIN_ACC_BITS <= acc_bits <= MAX_ACC_BITS:
        raise KernelInputError(f"acc_bits must be an integer in [{MIN_ACC_BITS}, {MAX_ACC_BITS}], "
                               f"got {acc_bits!r}")
    if overflow not in OVERFLOW_MODES:
        raise KernelInputError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")
    lo, hi = acc_range(int(acc_bits))
    return lo, hi, overflow == "saturate"


def check_int_array(name: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.type not in INT_DTYPES:
        raise KernelInputError(f"{name} must be an integer array "
                               f"({', '.join(np.dtype(t).name for t in INT_DTYPES)}), got {arr.dtype}")
    return arr


def zero_point(name: str, zp, n: int | None) -> np.ndarray:
    """A scalar zero point, or one per output channel/column when n is given; returned as int64 (n,)
    (a scalar is broadcast so the kernels index one array whatever the granularity)."""
    z = np.asarray(zp if zp is not None else 0)
    if z.dtype.kind not in "iub":
        raise KernelInputError(f"{name} must be integer, got dtype {z.dtype}")
    z = z.astype(np.int64)
    if z.ndim == 0 or z.size == 1:
        return np.full(n if n is not None else 1, int(z.reshape(-1)[0]), dtype=np.int64)
    if n is None or z.ndim != 1 or z.shape[0] != n:
        raise KernelInputError(f"{name} must be a scalar"
                               + (f" or have shape ({n},)" if n is not None else "")
                               + f", got shape {z.shape}")
    return z


def zp_in_range(name: str, zp: int, dtype) -> int:
    """A zero point that must be a value of dtype (it fills padding that results are cast back to)."""
    info = np.iinfo(dtype)
    if not info.min <= zp <= info.max:
        raise KernelInputError(f"{name}={zp} is outside the range of {np.dtype(dtype).name} "
                               f"[{info.min}, {info.max}]")
    return zp


def bias_vector(bias, m: int) -> np.ndarray:
    if bias is None:
        return np.zeros(m, dtype=np.int64)
    b = np.asarray(bias)
    if b.dtype.kind not in "iu" or b.shape != (m,):
        raise KernelInputError(f"bias must be an integer array of shape ({m},), "
                               f"got {b.dtype} {b.shape}")
    return b.astype(np.int64)


def _pair(name: str, v, n: int) -> tuple[int, ...]:
    t = tuple(int(e) for e in (v if np.ndim(v) else (v,) * n))
    if len(t) != n:
        raise KernelInputError(f"{name} must have {n} entries, got {v!r}")
    return t


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one 2-D convolution; pads are (top, left, bottom, right)."""
    n: int
    c: int
    h: int
    w: int
    m: int
    kh: int
    kw: int
    groups: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilation: tuple[int, int]
    oh: int
    ow: int

    @property
    def cg(self) -> int:
        return self.c // self.groups

    @property
    def mg(self) -> int:
        return self.m // self.groups


def conv_geometry(x: np.ndarray, w: np.ndarray, stride, pads, dilation, groups) -> ConvGeometry:
    if x.ndim != 4 or w.ndim != 4:
        raise KernelInputError(f"conv2d needs x (N, C, H, W) and w (M, C/groups, kh, kw), "
                               f"got x {x.shape}, w {w.shape}")
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    groups = int(groups)
    if groups < 1 or c % groups or m % groups:
        raise KernelInputError(f"groups={groups} must divide input channels C={c} (x {x.shape}) "
                               f"and output channels M={m} (w {w.shape})")
    if cg != c // groups:
        raise KernelInputError(f"w {w.shape} must have C/groups = {c}/{groups} = {c // groups} "
                               f"input channels, has {cg}")
    sh, sw = _pair("stride", stride, 2)
    dh, dw = _pair("dilation", dilation, 2)
    pt, pl, pb, pr = _pair("pads", pads, 4)
    if min(sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
        raise KernelInputError(f"stride and dilation must be >= 1 and pads >= 0, got stride "
                               f"{(sh, sw)}, dilation {(dh, dw)}, pads {(pt, pl, pb, pr)}")
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise KernelInputError(f"kernel {(kh, kw)} with dilation {(dh, dw)} does not fit input "
                               f"{(h, wd)} with pads {(pt, pl, pb, pr)}")
    return ConvGeometry(n, c, h, wd, m, kh, kw, groups, (sh, sw), (pt, pl, pb, pr), (dh, dw), oh, ow)


def pool_geometry(x: np.ndarray, kernel, stride, pads, ceil_mode: bool) -> tuple[int, ...]:
    """Return (kh, kw, sh, sw, pt, pl, pb, pr, oh, ow) for a 2-D pool over NCHW x."""
    if x.ndim != 4:
        raise KernelInputError(f"pooling needs x of shape (N, C, H, W), got {x.shape}")
    kh, kw = _pair("kernel", kernel, 2)
    sh, sw = _pair("stride", stride, 2)
    pt, pl, pb, pr = _pair("pads", pads, 4)
    if min(kh, kw, sh, sw) < 1 or min(pt, pl, pb, pr) < 0 or max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise KernelInputError(f"bad pooling window: kernel {(kh, kw)}, stride {(sh, sw)}, pads "
                               f"{(pt, pl, pb, pr)} (pads must be smaller than the kernel)")
    h, w = x.shape[2:]

    def out(size, k, s, p):
        span = size + p - k
        return (-(-span // s) if ceil_mode else span // s) + 1

    oh, ow = out(h, kh, sh, pt + pb), out(w, kw, sw, pl + pr)
    if ceil_mode:
        # A window that would start in the bottom/right padding is dropped (ONNX, PyTorch).
        if (oh - 1) * sh >= h + pt:
            oh -= 1
        if (ow - 1) * sw >= w + pl:
            ow -= 1
    if oh < 1 or ow < 1:
        raise KernelInputError(f"pool kernel {(kh, kw)} does not fit input {(h, w)} with pads "
                               f"{(pt, pl, pb, pr)}")
    return kh, kw, sh, sw, pt, pl, pb, pr, oh, ow


def matmul_shapes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple, bool, bool]:
    """Promote 1-D operands as numpy.matmul does and broadcast the batch axes.

    Returns (a3, b3, batch_shape, squeeze_m, squeeze_n) with a3 (B, M, K) and b3 (B, K, N) views.
    """
    if a.ndim == 0 or b.ndim == 0:
        raise KernelInputError(f"matmul needs arrays of rank >= 1, got {a.shape} and {b.shape}")
    squeeze_m, squeeze_n = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if squeeze_m else a
    b2 = b[:, None] if squeeze_n else b
    if a2.shape[-1] != b2.shape[-2]:
        raise KernelInputError(f"matmul: a {a.shape} and b {b.shape} disagree on K "
                               f"({a2.shape[-1]} vs {b2.shape[-2]})")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise KernelInputError(f"matmul: batch axes of a {a.shape} and b {b.shape} do not broadcast") from None
    nb = int(np.prod(batch, dtype=np.int64))
    a3 = np.broadcast_to(a2, batch + a2.shape[-2:]).reshape((nb,) + a2.shape[-2:])
    b3 = np.broadcast_to(b2, batch + b2.shape[-2:]).reshape((nb,) + b2.shape[-2:])
    return a3, b3, batch, squeeze_m, squeeze_n


def matmul_out_shape(batch, m, n, squeeze_m, squeeze_n) -> tuple:
    return tuple(batch) + ((m,) if not squeeze_m else ()) + ((n,) if not squeeze_n else ())
