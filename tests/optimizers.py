"""Registry of the package's optimizers, for tests parametrised over the family.

Each entry is called with keyword arguments and builds the optimizer; ``entry.fn`` is the public
function and ``entry.base`` the keyword arguments behaviour tests use, so tests can also wrap the
function itself (for example in ``optax.inject_hyperparams``).
"""

import adamod_optax as ao


class Entry:
    def __init__(self, fn, **base):
        self.fn, self.base = fn, base

    def __call__(self, **kw):
        return self.fn(**{**self.base, **kw})


def entry(fn, **base):
    return Entry(fn, **base)


FAMILY = {
    "adamod": entry(ao.adamod, learning_rate=1e-2),
    "adamod_paper": entry(ao.adamod, learning_rate=1e-2, algorithm="paper"),
}
FAMILY.update({
    # final_lr is an absolute SGD learning rate (it does not follow `learning_rate` unless
    # base_lr is given); 1e-3 keeps the SGD end phase stable on Rosenbrock (curvature ~1000).
    "adabound": entry(ao.adabound, learning_rate=1e-2, final_lr=1e-3),
    "amsbound": entry(ao.amsbound, learning_rate=1e-2, final_lr=1e-3),
    "diffgrad": entry(ao.diffgrad, learning_rate=1e-2),
    "diffmod": entry(ao.diffmod, learning_rate=1e-2),
})
