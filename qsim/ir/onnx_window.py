"""Conv / pool windows as the importers read them: ONNX padding (explicit or auto_pad) and the
checks both importers apply before a window reaches the IR."""
from __future__ import annotations

from qsim.errors import GraphError


def spatial_pads(a: dict, in_hw, kernel, stride, dilation=(1, 1)) -> tuple[int, ...]:
    """(top, left, bottom, right) from ONNX ``pads`` or ``auto_pad`` (SAME_* splits the excess)."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for size, k, s, d in zip(in_hw, kernel, stride, dilation):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
        return (lo[0], lo[1], hi[0], hi[1])
    if auto == "VALID":
        return (0, 0, 0, 0)
    p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    return (p[0], p[1], p[2], p[3])


def check_window(kernel, stride, dilation, pad, in_hw) -> dict:
    """A conv / pool window as the IR takes it, refused where the file cannot mean it: a kernel,
    stride or dilation below 1 (stride 0 would divide by zero), negative padding, or a (dilated)
    kernel larger than the padded input. ``pad`` is (top, left, bottom, right)."""
    window = {"kernel": tuple(int(k) for k in kernel), "stride": tuple(int(s) for s in stride),
              "dilation": tuple(int(d) for d in dilation), "pad": tuple(int(p) for p in pad)}
    for what in ("kernel", "stride", "dilation"):
        if len(window[what]) != 2 or min(window[what]) < 1:
            raise GraphError(f"{what} {list(window[what])} must be two integers >= 1")
    if len(window["pad"]) != 4 or min(window["pad"]) < 0:
        raise GraphError(f"padding {list(window['pad'])} must be four integers >= 0")
    for axis, size, k, d, lo, hi in zip(("height", "width"), in_hw, window["kernel"], window["dilation"],
                                        window["pad"][:2], window["pad"][2:]):
        if (k - 1) * d + 1 > size + lo + hi:
            raise GraphError(f"the {axis} window ({k} taps, dilation {d}) is larger than the padded input "
                             f"({size} + {lo} + {hi})")
    return window
