"""AdaMod and the bounded-learning-rate optimizers as composable optax transformations."""

from adamod_optax._adabound import (
    ClipByDynamicBoundState,
    adabound,
    amsbound,
    clip_by_dynamic_bound,
)
from adamod_optax._adamod import ScaleByMomentalBoundState, adamod, scale_by_momental_bound
from adamod_optax._core import (
    AddDecoupledWeightDecayState,
    BoundStep,
    FastPath,
    RateBound,
    ScaleByBoundedAdamState,
    add_decoupled_weight_decay,
    chain_bounds,
    rate_bound,
    scale_by_bounded_adam,
)
from adamod_optax._diagnostics import (
    LearningRateSummary,
    effective_learning_rates,
    learning_rate_summary,
)
from adamod_optax._diffgrad import WithFrictionState, diffgrad, diffmod, with_friction

__version__ = "0.1.0"

__all__ = [
    "AddDecoupledWeightDecayState",
    "BoundStep",
    "ClipByDynamicBoundState",
    "FastPath",
    "LearningRateSummary",
    "RateBound",
    "ScaleByBoundedAdamState",
    "ScaleByMomentalBoundState",
    "WithFrictionState",
    "__version__",
    "adabound",
    "adamod",
    "add_decoupled_weight_decay",
    "amsbound",
    "chain_bounds",
    "clip_by_dynamic_bound",
    "diffgrad",
    "diffmod",
    "effective_learning_rates",
    "learning_rate_summary",
    "rate_bound",
    "scale_by_bounded_adam",
    "scale_by_momental_bound",
    "with_friction",
]
