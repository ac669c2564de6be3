"""Pure tensor functions that unlearning methods compose.

* :mod:`amnesiac.ops.pgd`: L2 PGD adversarial examples and attack targets.
* :mod:`amnesiac.ops.importance`: MAS parameter importance and the weighted quadratic penalty.
* :mod:`amnesiac.ops.proxy`: proxy inputs made from the forget set (shifts, flips, mixtures).
* :mod:`amnesiac.ops.precision`: the autocast context of a ``precision`` setting.
* :mod:`amnesiac.ops.layout`: channels-last storage of a model's convolutions (speed only).
* :mod:`amnesiac.ops.shrink`: the smallest fraction of an update that still meets the objective.
* :mod:`amnesiac.ops.boundary`: the class of each input's nearest decision boundary (DeepFool).
* :mod:`amnesiac.ops.project`: A-GEM projection of a gradient against a reference gradient.
* :mod:`amnesiac.ops.dampen`: SSD's importances and selective dampening.
* :mod:`amnesiac.ops.mahalanobis`: SCAR's class statistics and Mahalanobis distances.
* :mod:`amnesiac.ops.nearest_adv`: AMUN's nearest adversarial example (L2 PGD, growing radius).
* :mod:`amnesiac.ops.features`: penultimate features of any ``nn.Module`` (SCAR, CKA), and
  the anchors nearest a forget set by them.
"""

from amnesiac.ops.boundary import boundary_distances, nearest_boundary_class, spread_targets
from amnesiac.ops.dampen import ssd_dampen, ssd_importance
from amnesiac.ops.features import near_anchors, penultimate_features
from amnesiac.ops.importance import importance_penalty, mas_importance, normalize_importance
from amnesiac.ops.layout import channels_last_copy, to_channels_last, to_contiguous
from amnesiac.ops.mahalanobis import class_statistics, mahalanobis
from amnesiac.ops.nearest_adv import nearest_adversarial
from amnesiac.ops.pgd import paper_targets, pgd_l2, random_targets
from amnesiac.ops.precision import autocast
from amnesiac.ops.project import agem_project
from amnesiac.ops.proxy import augment_to, augmented_size, forget_proxies, shift_images
from amnesiac.ops.shrink import shrink_update

__all__ = [
    "agem_project",
    "augment_to",
    "augmented_size",
    "autocast",
    "boundary_distances",
    "channels_last_copy",
    "class_statistics",
    "forget_proxies",
    "importance_penalty",
    "mahalanobis",
    "mas_importance",
    "near_anchors",
    "nearest_adversarial",
    "nearest_boundary_class",
    "normalize_importance",
    "paper_targets",
    "penultimate_features",
    "pgd_l2",
    "random_targets",
    "shift_images",
    "shrink_update",
    "spread_targets",
    "ssd_dampen",
    "ssd_importance",
    "to_channels_last",
    "to_contiguous",
]
