"""amnesiac: make a trained PyTorch image classifier forget specific training instances.

Example:
    >>> import amnesiac
    >>> ckpt = amnesiac.load_pretrained("digits")
    >>> data = amnesiac.load_dataset("digits")
    >>> idx = amnesiac.parse_forget("random:8:0", data.train_y)
    >>> forget = (data.train_x[idx], data.train_y[idx])
    >>> result = amnesiac.unlearn(ckpt.model, forget=forget, method="l2ul", seed=0)
    >>> amnesiac.evaluate(result.model, forget=forget)["forget_acc"]
    0.0
"""

from amnesiac.api import evaluate, list_methods, make_config, unlearn
from amnesiac.audit import audit
from amnesiac.data import (
    Splits,
    as_images,
    as_tensors,
    load_dataset,
    load_surrogate,
    parse_forget,
    retain_eval_indices,
    retain_indices,
)
from amnesiac.data.anchors import (
    Anchors,
    model_anchors,
    not_retained,
    random_rows,
    reserve_rows,
    split_request,
    trained_rows,
)
from amnesiac.errors import (
    AmnesiacError,
    AnchorError,
    CheckpointError,
    DatasetNotFoundError,
    DivergenceError,
    InvalidForgetSetError,
    InvalidSettingsError,
    UnknownNameError,
)
from amnesiac.ledger import Ledger, LedgerError, forget_sha256
from amnesiac.methods.base import (
    StepConfig,
    UnlearnConfig,
    UnlearnData,
    Unlearner,
    UnlearnResult,
    get_method,
    register,
)
from amnesiac.models import (
    Checkpoint,
    ImageClassifier,
    checkpoint_meta,
    create_model,
    load_checkpoint,
    load_pretrained,
    model_meta,
    save_checkpoint,
)
from amnesiac.shadows import Shadows, train_shadows
from amnesiac.training import TrainRecipe, train_classifier

__version__ = "0.2.0"

__all__ = [
    "AmnesiacError",
    "AnchorError",
    "Anchors",
    "Checkpoint",
    "CheckpointError",
    "DatasetNotFoundError",
    "DivergenceError",
    "ImageClassifier",
    "InvalidForgetSetError",
    "InvalidSettingsError",
    "Ledger",
    "LedgerError",
    "Shadows",
    "Splits",
    "StepConfig",
    "TrainRecipe",
    "UnknownNameError",
    "UnlearnConfig",
    "UnlearnData",
    "UnlearnResult",
    "Unlearner",
    "__version__",
    "as_images",
    "as_tensors",
    "audit",
    "checkpoint_meta",
    "create_model",
    "evaluate",
    "forget_sha256",
    "get_method",
    "list_methods",
    "load_checkpoint",
    "load_dataset",
    "load_pretrained",
    "load_surrogate",
    "make_config",
    "model_anchors",
    "model_meta",
    "not_retained",
    "parse_forget",
    "random_rows",
    "register",
    "reserve_rows",
    "retain_eval_indices",
    "retain_indices",
    "save_checkpoint",
    "split_request",
    "train_classifier",
    "train_shadows",
    "trained_rows",
    "unlearn",
]
