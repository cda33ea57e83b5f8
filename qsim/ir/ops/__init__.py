"""Op modules. Importing this package fills ``qsim.ir.registry.OPS``; the list is explicit."""
from qsim.ir.ops import attention, conv, dynamic, elementwise, extra, linear, norm, pool, shape  # noqa: F401
