"""AdaMod and the bounded-learning-rate optimizers as composable optax transformations."""

from adamod_optax._alias import adamod
from adamod_optax._transforms import (
    AddDecoupledWeightDecayState,
    ScaleByBoundedAdamState,
    ScaleByMomentalBoundState,
    add_decoupled_weight_decay,
    scale_by_bounded_adam,
    scale_by_momental_bound,
)

__version__ = "0.1.0"

__all__ = [
    "AddDecoupledWeightDecayState",
    "ScaleByBoundedAdamState",
    "ScaleByMomentalBoundState",
    "__version__",
    "adamod",
    "add_decoupled_weight_decay",
    "scale_by_bounded_adam",
    "scale_by_momental_bound",
]
