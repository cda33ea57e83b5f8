"""Buffer sharing between the nodes of an execution plan (``plan``): once every node is planned, a
liveness pass over the topological order gives each planned buffer the interval of nodes during
which it holds a value, and buffers whose intervals do not overlap share one block of memory
(greedy, best fit, as an arena allocator does). A node's output buffer lives from its node to the
last node that reads it, or reads a view of it (an op that may return a view of its input, such as
Reshape or any node on the per-node path, extends its inputs' lifetimes to its outputs' lifetimes);
a graph output lives to the end (its node writes fresh arrays: no buffer); scratch buffers live during
their node only.
"""
from __future__ import annotations

import numpy as np


def _lifetimes(nodes, bound: list, graph_outputs) -> dict[str, int]:
    """Tensor -> index of the last node during which its memory may be read."""
    end = {t: len(nodes) for t in graph_outputs}
    for j in range(len(nodes) - 1, -1, -1):
        node, b = nodes[j], bound[j]
        reach = j
        if b is False or b.aliases:  # its outputs may be views of its inputs
            reach = max([j] + [end.get(t, j) for t in node.outputs])
        for t in node.inputs:
            end[t] = max(end.get(t, j), reach)
    return end


def share_buffers(nodes, bound: list, graph_outputs) -> list[np.ndarray]:
    """Replace the planned buffers (``Bound.outputs``, ``Bound.scratch``) by views of shared
    blocks; returns the blocks."""
    end = _lifetimes(nodes, bound, graph_outputs)
    requests = []  # (start, end, holder list, index, array)
    for i, (node, b) in enumerate(zip(nodes, bound)):
        if b is False:
            continue
        if not b.keep:
            for k, (t, buf) in enumerate(zip(node.outputs, b.outputs)):
                requests.append((i, end.get(t, i), b.outputs, k, buf))
        for k, buf in enumerate(b.scratch):
            requests.append((i, i, b.scratch, k, buf))
    blocks: list[list] = []  # [busy until, size in bytes, occupants]
    for start, stop, holder, k, buf in requests:  # requests come in start order
        free = [blk for blk in blocks if blk[0] < start]
        fits = [blk for blk in free if blk[1] >= buf.nbytes]
        blk = min(fits, key=lambda b: b[1]) if fits else max(free, key=lambda b: b[1]) if free else None
        if blk is None:
            blk = [stop, 0, []]
            blocks.append(blk)
        blk[0], blk[1] = stop, max(blk[1], buf.nbytes)
        blk[2].append((holder, k, buf))
    arenas = []
    for _, size, occupants in blocks:
        arena = np.empty(size, dtype=np.uint8)
        for holder, k, buf in occupants:
            holder[k] = arena[:buf.nbytes].view(buf.dtype).reshape(buf.shape)
        arenas.append(arena)
    return arenas
