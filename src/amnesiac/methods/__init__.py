"""Unlearning methods, one file each; importing this package registers them all."""

from amnesiac.methods import (  # noqa: F401  (registration on import)
    amun,
    bad_teacher,
    finetune,
    jit,
    l2ul,
    l2ul_adv,
    l2ul_imp,
    mu_mis,
    neg_grad,
    neg_grad_retain,
    random_label,
    relabel,
    retrain,
    salun,
    scar,
    scrub,
    ssd,
)
from amnesiac.methods.base import (
    MethodInfo,
    StepConfig,
    UnlearnConfig,
    UnlearnData,
    Unlearner,
    UnlearnResult,
    get_method,
    register,
    registered,
)

__all__ = [
    "MethodInfo",
    "StepConfig",
    "UnlearnConfig",
    "UnlearnData",
    "UnlearnResult",
    "Unlearner",
    "get_method",
    "register",
    "registered",
]
