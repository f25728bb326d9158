"""The degradation operators of ncvsd: forward models, adjoints, exact likelihood steps, by name.

>>> import operators
>>> op = operators.create("sr4", (3, 32, 32))
"""

from operators.base import Operator
from operators.noise import generators_for_seeds, randn, randn_like
from operators.padding import Padded, base_operator, pad_operator
from operators.registry import create, from_config, get, names, register

# Built-in operators register themselves on import (modules added by the operator library).
from operators import builtin as _builtin  # noqa: F401,E402

__all__ = ["Operator", "Padded", "base_operator", "pad_operator", "create", "from_config", "get", "names", "register", "randn", "randn_like",
           "generators_for_seeds"]
