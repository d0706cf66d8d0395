"""AdaMod and the bounded-learning-rate optimizers as composable optax transformations."""

from adamod_optax._alias import adamod
from adamod_optax._bounds import ClipByDynamicBoundState, clip_by_dynamic_bound
from adamod_optax._family import adabound, amsbound, diffgrad, diffmod
from adamod_optax._friction import WithFrictionState, with_friction
from adamod_optax._transforms import (
    AddDecoupledWeightDecayState,
    ScaleByBoundedAdamState,
    ScaleByMomentalBoundState,
    add_decoupled_weight_decay,
    scale_by_bounded_adam,
    scale_by_momental_bound,
)
from adamod_optax.diagnostics import (
    LearningRateSummary,
    effective_learning_rates,
    learning_rate_summary,
)

__version__ = "0.1.0"

__all__ = [
    "AddDecoupledWeightDecayState",
    "ClipByDynamicBoundState",
    "LearningRateSummary",
    "ScaleByBoundedAdamState",
    "ScaleByMomentalBoundState",
    "WithFrictionState",
    "__version__",
    "adabound",
    "adamod",
    "add_decoupled_weight_decay",
    "amsbound",
    "clip_by_dynamic_bound",
    "diffgrad",
    "diffmod",
    "effective_learning_rates",
    "learning_rate_summary",
    "scale_by_bounded_adam",
    "scale_by_momental_bound",
    "with_friction",
]
