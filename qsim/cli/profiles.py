"""``qsim profiles list | show NAME | check FILE``: the hardware profiles."""
from __future__ import annotations

from qsim.errors import QsimError


def add_parser(sub) -> None:
    prof = sub.add_parser("profiles", help="list, show or check hardware profiles")
    prof.add_argument("action", choices=("list", "show", "check"))
    prof.add_argument("target", nargs="?", help="profile name or YAML file (show, check)")
    prof.set_defaults(func=_cmd_profiles)


def _cmd_profiles(args) -> int:
    from qsim.hw.profile import PROFILE_DIR, load_profile

    if args.action == "list":
        for path in sorted(PROFILE_DIR.glob("*.yaml")):
            p = load_profile(path)
            print(f"{p.name:10s} {p.kind:9s} {p.description}")
        return 0
    if not args.target:
        raise QsimError(f"qsim profiles {args.action} needs a profile name or file")
    p = load_profile(args.target)
    if args.action == "check":
        print(f"{p.source}: ok ({p.name})")
        return 0
    print(_describe(p))
    return 0


def _describe(p) -> str:
    from qsim.report import mib

    lines = [f"{p.name}: {p.description}",
             f"  kind {p.kind}, clock {p.clock_hz / 1e6:g} MHz, source {p.source}"]
    for unit, peak in p.compute.macs_per_cycle.items():
        tops = 2 * peak * p.clock_hz / 1e12
        lines.append(f"  {unit:6s} {peak:>10g} MACs/cycle  ({tops:.3g} TOPS peak, efficiency "
                     f"{p.compute.efficiency[unit]:g}, {p.mac_pj[unit]:g} pJ/MAC)")
    for m in p.memories.values():
        lines.append(f"  {m.name:14s} {mib(m.capacity_bytes):>12s}  {m.bandwidth_bytes_per_s / 1e9:g} GB/s  "
                     f"{'on chip' if m.on_chip else 'off chip'}")
    lines.append(f"  weights in {p.weights_in}, activations in {p.activations_in}, buffer {p.buffer}; "
                 f"dispatch {p.dispatch_s * 1e6:g} us; static {p.static_w:g} W")
    if p.systolic:
        s = p.systolic
        lines.append(f"  systolic {s.rows}x{s.cols} {s.dataflow}; SRAM ifmap {s.ifmap_sram_kib:g} KiB, filter "
                     f"{s.filter_sram_kib:g} KiB, ofmap {s.ofmap_sram_kib:g} KiB; DRAM port {s.dram}")
    return "\n".join(lines + _stack_lines(p))


def _stack_lines(p) -> list[str]:
    """Each software stack the profile lists: its runtime, what it fuses, how it launches, its error band."""
    from qsim.hw.profile import load_profile
    from qsim.report import error_band
    from qsim.yamlio import load_yaml

    names = list(load_yaml(p.source).get("stacks") or {}) if p.stack is not None else []
    if not names:
        return [f"  no stack section: activations fuse into the matrix op before them, every other node is a "
                f"kernel of its own; {error_band(p)['text']}"]
    lines = []
    for name in names:
        q = p if name == p.stack.name else load_profile(p.source, {"stack": name})
        s = q.stack
        yes = lambda on: "yes" if on else "no"  # noqa: E731
        lines += [f"  stack {name}{' (selected)' if q is p else ''}: {s.runtime}",
                  f"    folds BatchNorm {yes(s.fold_batchnorm)}, fuses activations {yes(s.fuse_activation)}, "
                  f"residual Add {yes(s.fuse_residual_add)}; attention {s.attention or 'one kernel'}; quantize "
                  f"{s.quantize}; launch {s.launch}",
                  f"    {error_band(q)['text']}"]
    return lines
