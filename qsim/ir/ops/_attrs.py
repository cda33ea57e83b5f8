"""Helpers to read op attributes that may be given as an int or a pair."""
from __future__ import annotations


def pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"attribute {name!r} must be an int or a pair, got {value}")
    return value


def pads(value) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right) from an int, a pair (h, w) or four values."""
    if isinstance(value, int):
        return (value,) * 4
    value = tuple(int(v) for v in value)
    if len(value) == 2:
        return (value[0], value[1], value[0], value[1])
    if len(value) == 4:
        return value
    raise ValueError(f"attribute 'pad' must be an int, a pair or four values, got {value}")


def window_out(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1,
               ceil_mode: bool = False) -> int:
    span = dilation * (kernel - 1) + 1
    num = size + pad_lo + pad_hi - span
    if num < 0:
        raise ValueError(f"window {span} larger than padded input {size + pad_lo + pad_hi}")
    out = -(-num // stride) + 1 if ceil_mode else num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_lo:  # no window starts in the end padding (ONNX)
        out -= 1
    return out
