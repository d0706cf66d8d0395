"""Registry of the package's optimizers, for tests parametrised over the family.

Each entry builds the optimizer from keyword arguments; ``defaults`` are the
arguments used by behaviour tests. Modules adding an optimizer add a line here.
"""

import adamod_optax as ao

FAMILY = {
    "adamod": lambda **kw: ao.adamod(**{"learning_rate": 1e-2, **kw}),
    "adamod_paper": lambda **kw: ao.adamod(**{"learning_rate": 1e-2, "algorithm": "paper", **kw}),
}
