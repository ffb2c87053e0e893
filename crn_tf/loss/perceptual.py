"""The CRN perceptual loss (single image) and diversity loss (k images), as the original computes them.

Single image (512p, 1024p): `L = sum_l w_l * mean |Phi_l(I) - Phi_l(g(L))|` over the layers
input, conv1_2, conv2_2, conv3_2, conv4_2, conv5_2 of VGG-19.

Diversity (256p, k = 9): for image u and layout channel p,
`E[u, p] = sum_l w_l * mean_hw( L_p^l * mean_c |Phi_l(I) - Phi_l(g_u(L))| )` with the layout
area-downsampled to layer l's size, and
`L = 0.999 * sum_p min_u E[u, p] + 0.001 * sum_p mean_u E[u, p]`, p over every channel incl. void.
With k = 1 and a layout whose channels sum to 1 per pixel (one-hot with void), sum_p E[p] is the
single-image loss, so the diversity loss then equals the single-image loss with the same weights.

Weights `w_l` multiply per-element MEANS, so the paper's "1 / (number of elements of layer l)"
on a sum is weight 1 here; that is where `"auto"` starts.

Class weights (an option, not the original's): `E[u, p]` times `c_p` per layout channel, so rare
classes (a bus, a train) weigh more than their area; with k = 1 the loss is then the
layout-masked sum `sum_p c_p * mean_hw(L_p^l * mean_c |...|)`. None (the default) is the original.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from crn_tf.loss.vgg import FEATURE_NAMES
from crn_tf.nn.ops import area_downsample
from crn_tf.nn.presets import PRESET_TABLE, release_layer_weights

LAYER_NAMES = FEATURE_NAMES
"""An alias kept for old imports: the loss's layers are the VGG features it compares (one list,
`crn_tf.loss.vgg.FEATURE_NAMES`, which this module uses)."""

PRESET_LAYER_WEIGHTS: dict[str, tuple[float, ...]] = {name: row.layer_weights for name, row in PRESET_TABLE.items()}
"""Preset name -> the original release's constants, on per-element means, in FEATURE_NAMES order:
a view of the preset table (`crn_tf.nn.presets`)."""

AUTO = "auto"
DIVERSITY_MEAN_WEIGHT = 0.001
DIVERSITY_MIN_WEIGHT = 1.0 - DIVERSITY_MEAN_WEIGHT  # 0.999: the min always gets 1 minus the mean's weight
DEFAULT_RESCALE_EPOCH = 100


def _initial_weights(layer_weights) -> tuple[str, np.ndarray]:
    """-> (name for the config, initial weights [6])."""
    if isinstance(layer_weights, str):
        if layer_weights == AUTO:
            return AUTO, np.ones(len(FEATURE_NAMES), np.float32)
        if layer_weights not in PRESET_LAYER_WEIGHTS:
            raise ValueError(
                f"layer_weights must be one of {sorted(PRESET_LAYER_WEIGHTS) + [AUTO]} or "
                f"{len(FEATURE_NAMES)} numbers, got {layer_weights!r}"
            )
        return layer_weights, np.asarray(PRESET_LAYER_WEIGHTS[layer_weights], np.float32)
    values = np.asarray(list(layer_weights), np.float64)
    if values.shape != (len(FEATURE_NAMES),) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"layer_weights must be {len(FEATURE_NAMES)} finite non-negative numbers for "
            f"{FEATURE_NAMES}, got {list(layer_weights)}"
        )
    return "custom", values.astype(np.float32)


def _checked_class_weights(class_weights) -> tuple[float, ...] | None:
    """None, or the weights as floats; raises ValueError unless they are positive and finite."""
    if class_weights is None:
        return None
    values = np.asarray(list(class_weights), np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"class_weights must be positive finite numbers, one per layout channel, got "
                         f"{list(class_weights)}")
    return tuple(float(v) for v in values)


class CRNLoss(tf.Module):
    """VGG-19 perceptual loss of CRN, single-image or diversity, with fixed or "auto" layer weights.

    Call `loss(real, fake, layout)` with `real` (batch, height, width, 3) and `fake`
    (batch, k, height, width, 3) (or (batch, height, width, 3) for k = 1), both RGB in 0..255,
    and `layout` (batch, height, width, channels), the one-hot layout incl. void (only needed
    for the diversity loss). Returns the float32 mean over the batch. Real and all k fakes go
    through VGG in one batched call; real features are under `tf.stop_gradient`.

    A `tf.train.Checkpoint(loss=loss)` saves the layer weights, the running statistics and
    the rescale count (not the VGG weights, which come from `features`).

    Args:
        features: callable images -> dict of features (a `crn_tf.loss.vgg.VGG19Features`).
        layer_weights: `"256p"`, `"512p"`, `"1024p"` (the original's constants), `"auto"`
            (the paper's rule: start at 1 per element, `rescale()` later), or 6 numbers for
            (input, conv1_2, ..., conv5_2). Defaults to None: the release's constants for this
            loss (`crn_tf.nn.presets.release_layer_weights`): `"256p"` if `diversity`, else `"512p"`.
        diversity: bool. The k-image diversity loss instead of the single-image loss.
            Defaults to False.
        rescale_epoch: int. The epoch after which the trainer should call `rescale()` for
            `"auto"` weights (see `maybe_rescale`). Defaults to 100, as the paper.
        diversity_mean_weight: float in [0, 1). The diversity loss's weight on the mean over the
            k images; the min over them gets 1 minus it. Defaults to 0.001, as the original.
        class_weights: one positive number per layout channel (void last), multiplying each
            channel's share of the loss (`crn_tf.data.class_weights.layout_class_weights`), or None
            (every pixel counts the same, the original). Defaults to None.
    """

    def __init__(
        self,
        features: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
        layer_weights: str | Sequence[float] | None = None,
        diversity: bool = False,
        rescale_epoch: int = DEFAULT_RESCALE_EPOCH,
        diversity_mean_weight: float = DIVERSITY_MEAN_WEIGHT,
        class_weights: Sequence[float] | None = None,
        name: str = "crn_loss",
    ):
        super().__init__(name=name)
        if layer_weights is None:
            layer_weights = release_layer_weights(diversity)
        self.layer_weights_name, initial = _initial_weights(layer_weights)
        self._layer_weights_arg = layer_weights if isinstance(layer_weights, str) else [float(w) for w in initial]
        self.diversity = bool(diversity)
        self.rescale_epoch = int(rescale_epoch)
        if not 0.0 <= float(diversity_mean_weight) < 1.0:
            raise ValueError(f"diversity_mean_weight must be in [0, 1), got {diversity_mean_weight}")
        self.diversity_mean_weight = float(diversity_mean_weight)
        self.class_weights = _checked_class_weights(class_weights)
        # A constant, not a variable: the weights come from the options, so a checkpoint does not hold them.
        self._class_weights = None if self.class_weights is None else tf.constant(self.class_weights, tf.float32)
        self.layer_names = FEATURE_NAMES
        # Not tracked: a checkpoint of the loss holds the loss's state, not 80 MB of VGG.
        object.__setattr__(self, "_features", features)

        # === State (checkpointed) ===
        self.layer_weights = tf.Variable(initial, trainable=False, name="layer_weights")
        # Running sums of the unweighted per-layer terms, per replica, summed when read
        # (like Keras metrics), so they work inside strategy.run.
        on_read = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.SUM,
        )
        self.stat_sum = tf.Variable(tf.zeros([len(FEATURE_NAMES)], tf.float32), name="stat_sum", **on_read)
        self.stat_count = tf.Variable(0.0, name="stat_count", **on_read)
        self.rescale_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="rescale_count")

    @property
    def features(self):
        return self._features

    @property
    def auto(self) -> bool:
        return self.layer_weights_name == AUTO

    def get_config(self) -> dict:
        """The constructor arguments (except `features`), JSON-ready for a run's config."""
        return {
            "layer_weights": self._layer_weights_arg,
            "diversity": self.diversity,
            "rescale_epoch": self.rescale_epoch,
            "diversity_mean_weight": self.diversity_mean_weight,
            "class_weights": None if self.class_weights is None else list(self.class_weights),
        }

    # === The loss ===

    def __call__(self, real, fake, layout=None, update_stats: bool = True) -> tf.Tensor:
        """Scalar float32 loss, the mean over the batch."""
        return tf.reduce_mean(self.per_example(real, fake, layout, update_stats=update_stats))

    def per_example(self, real, fake, layout=None, update_stats: bool = True) -> tf.Tensor:
        """Loss per example, (batch,) float32; for `tf.nn.compute_average_loss` under tf.distribute."""
        return tf.reduce_sum(self.per_layer(real, fake, layout, update_stats=update_stats), axis=-1)

    def terms(self, real, fake, layout=None, update_stats: bool = False) -> dict[str, tf.Tensor]:
        """Per-layer weighted terms (batch means, float32) for logging; they sum to the loss."""
        return self.terms_from_per_layer(self.per_layer(real, fake, layout, update_stats=update_stats))

    def terms_from_per_layer(self, per_layer: tf.Tensor) -> dict[str, tf.Tensor]:
        """(batch, 6) from `per_layer` -> {"input": ..., ..., "conv5_2": ..., "total": ...}."""
        means = tf.reduce_mean(per_layer, axis=0)
        terms = {name: means[i] for i, name in enumerate(FEATURE_NAMES)}
        terms["total"] = tf.reduce_sum(means)
        return terms

    def per_layer(self, real, fake, layout=None, update_stats: bool = True) -> tf.Tensor:
        """Weighted per-layer contributions (batch, 6) float32; row sums are `per_example`.

        With "auto" weights and `update_stats`, the unweighted terms are added to the running
        statistics that `rescale()` uses (pass False for validation).
        """
        unweighted = self.unweighted_terms(real, fake, layout)
        if self.auto and update_stats:
            self.stat_sum.assign_add(tf.reduce_sum(unweighted, axis=0))
            self.stat_count.assign_add(tf.cast(tf.shape(unweighted)[0], tf.float32))
        return unweighted * self.layer_weights[tf.newaxis, :]

    def unweighted_terms(self, real, fake, layout=None) -> tf.Tensor:
        """Per-layer terms before the layer weights, (batch, 6) float32.

        Single image: mean |Phi_l(I) - Phi_l(g)|. Diversity: the layer's share of the total,
        `(1 - m) * sum_p E_l[u*_p, p] + m * sum_p mean_u E_l[u, p]` (m = 0.001, the original's), `u*_p` the image
        minimising the weighted E[u, p], so that sum_l w_l * term_l is the loss.
        """
        real, fake, layout = self._check_inputs(real, fake, layout)
        batch = tf.shape(real)[0]
        k = fake.shape[1]
        height, width = real.shape[1], real.shape[2]
        # One VGG pass over [real; fake_0 ... fake_{k-1} of each example].
        images = tf.concat([real, tf.reshape(fake, [-1, height, width, 3])], axis=0)
        features = self._features(images)
        errors = []
        for name in FEATURE_NAMES:
            # tf.split, not slicing: its gradient is a concat, where StridedSliceGrad took 7% of a
            # 256p bf16 training step (BENCHMARKS.md).
            real_part, fake_part = tf.split(features[name], [batch, batch * k], axis=0)
            real_feature = tf.stop_gradient(tf.cast(real_part, tf.float32))  # (B, h, w, c)
            fake_part = tf.cast(fake_part, tf.float32)
            fake_feature = tf.reshape(fake_part, tf.concat([[batch, k], tf.shape(fake_part)[1:]], 0))
            error = tf.abs(fake_feature - real_feature[:, tf.newaxis])  # (B, k, h, w, c)
            if self.diversity:
                errors.append(self._class_weighted(self._masked_error(tf.reduce_mean(error, axis=-1), layout)))
            elif self._class_weights is not None:
                per_class = self._class_weighted(self._masked_error(tf.reduce_mean(error, axis=-1), layout))
                errors.append(tf.reduce_sum(per_class[:, 0], axis=-1))  # (B,): k = 1
            else:
                errors.append(tf.reduce_mean(error, axis=[1, 2, 3, 4]))  # (B,)
        if not self.diversity:
            return tf.stack(errors, axis=-1)
        return self._diversity_terms(tf.stack(errors, axis=1))

    @staticmethod
    def _masked_error(error_map: tf.Tensor, layout: tf.Tensor) -> tf.Tensor:
        """(B, k, h, w) channel-mean error, layout (B, H, W, P) -> E_l (B, k, P)."""
        static_hw = error_map.shape[2:4]
        if static_hw[0] is not None and static_hw[1] is not None:
            mask = area_downsample(layout, (static_hw[0], static_hw[1]))
        else:
            mask = tf.image.resize(layout, tf.shape(error_map)[2:4], method="area")
        mask = tf.cast(mask, tf.float32)  # (B, h, w, P)
        pixels = tf.cast(tf.shape(error_map)[2] * tf.shape(error_map)[3], tf.float32)
        return tf.einsum("bkhw,bhwp->bkp", error_map, mask) / pixels

    def _class_weighted(self, per_class: tf.Tensor) -> tf.Tensor:
        """E_l (B, k, P) times the class weights (unchanged without them)."""
        return per_class if self._class_weights is None else per_class * self._class_weights

    def _diversity_terms(self, layer_errors: tf.Tensor) -> tf.Tensor:
        """E_l (B, L, k, P) -> per-layer unweighted shares of the diversity loss (B, L)."""
        total = tf.einsum("blkp,l->bkp", layer_errors, self.layer_weights)  # E[u, p]
        best = tf.argmin(total, axis=1)  # (B, P): u*_p
        chosen = tf.stop_gradient(tf.one_hot(best, tf.shape(total)[1], axis=1, dtype=tf.float32))  # (B, k, P)
        min_part = tf.reduce_sum(layer_errors * chosen[:, tf.newaxis], axis=[2, 3])  # (B, L)
        mean_part = tf.reduce_sum(tf.reduce_mean(layer_errors, axis=2), axis=-1)  # (B, L)
        mean_weight = self.diversity_mean_weight
        return (1.0 - mean_weight) * min_part + mean_weight * mean_part

    def _check_inputs(self, real, fake, layout):
        real = tf.cast(tf.convert_to_tensor(real), tf.float32)
        fake = tf.cast(tf.convert_to_tensor(fake), tf.float32)
        if real.shape.rank != 4 or real.shape[-1] != 3:
            raise ValueError(f"real must be (batch, height, width, 3), got shape {real.shape}")
        if fake.shape.rank == 4:
            fake = fake[:, tf.newaxis]
        if fake.shape.rank != 5 or fake.shape[-1] != 3 or fake.shape[1] is None:
            raise ValueError(f"fake must be (batch, k, height, width, 3) with a static k, got shape {fake.shape}")
        if real.shape[1] is None or real.shape[2] is None:
            raise ValueError(f"real needs a static height and width, got shape {real.shape}")
        if fake.shape[2:4] != real.shape[1:3]:
            raise ValueError(f"fake images {fake.shape} and real images {real.shape} differ in size")
        if not self.diversity:
            if fake.shape[1] != 1:
                raise ValueError(
                    f"the single-image loss takes one image per layout, got k = {fake.shape[1]}; "
                    "use CRNLoss(..., diversity=True) for k images"
                )
            if self.class_weights is None:
                return real, fake, None
        if layout is None:
            needs = "the diversity loss" if self.diversity else "a loss with class weights"
            raise ValueError(f"{needs} needs the layout (batch, height, width, channels)")
        layout = tf.cast(tf.convert_to_tensor(layout), tf.float32)
        if layout.shape.rank != 4 or layout.shape[1:3] != real.shape[1:3]:
            raise ValueError(f"layout must be (batch, {real.shape[1]}, {real.shape[2]}, channels), got {layout.shape}")
        if self.class_weights is not None and layout.shape[-1] != len(self.class_weights):
            raise ValueError(f"{len(self.class_weights)} class weights for a layout of {layout.shape[-1]} channels; "
                             "give one weight per layout channel, void last")
        return real, fake, layout

    # === "auto" layer weights ===

    def running_means(self) -> np.ndarray:
        """Mean unweighted term per layer since the last rescale (cross-replica context, eager)."""
        count = float(self.stat_count.numpy())
        if count <= 0:
            raise RuntimeError(
                "CRNLoss.rescale: no statistics collected yet; call the loss with "
                "layer_weights='auto' and update_stats=True first, or pass stats"
            )
        return self.stat_sum.numpy().astype(np.float64) / count

    def rescale(self, stats: Sequence[float] | Mapping[str, float] | None = None) -> dict[str, float]:
        """Sets the layer weights so every layer's expected term is equal (the paper, after 100 epochs).

        `stats`: each layer's expected UNWEIGHTED term (a mapping by layer name or 6 numbers);
        default: the running means the loss collected itself. The common value is the mean of the
        current expected weighted terms, so the expected total loss does not jump. Resets the
        running statistics. Call it eagerly, outside `strategy.run`. Returns the new weights.
        """
        if stats is None:
            means = self.running_means()
        elif isinstance(stats, Mapping):
            missing = [name for name in FEATURE_NAMES if name not in stats]
            if missing:
                raise ValueError(f"rescale stats miss layers {missing}")
            means = np.asarray([float(stats[name]) for name in FEATURE_NAMES], np.float64)
        else:
            means = np.asarray(list(stats), np.float64)
        if means.shape != (len(FEATURE_NAMES),) or not np.all(np.isfinite(means)) or np.any(means <= 0):
            raise ValueError(f"rescale needs {len(FEATURE_NAMES)} positive finite layer means, got {means.tolist()}")
        weights = self.layer_weights.numpy().astype(np.float64)
        target = float(np.mean(weights * means))
        new_weights = target / means
        self.layer_weights.assign(new_weights.astype(np.float32))
        self.rescale_count.assign_add(1)
        self.reset_stats()
        return {name: float(w) for name, w in zip(FEATURE_NAMES, new_weights)}

    def maybe_rescale(self, epochs_done: int) -> bool:
        """For "auto": rescales once when `epochs_done` >= `rescale_epoch`; True if it did."""
        if not self.auto or int(self.rescale_count.numpy()) > 0 or epochs_done < self.rescale_epoch:
            return False
        self.rescale()
        return True

    def reset_stats(self) -> None:
        self.stat_sum.assign(tf.zeros_like(self.stat_sum))
        self.stat_count.assign(0.0)


def build_loss(vgg_weights: str | None = None, diversity: bool = False, preset: str = "256p",
               layer_weights: str = "original", vgg_pooling: str = "avg", precision: str = "off",
               recompute: bool = False, rescale_epoch: int = DEFAULT_RESCALE_EPOCH,
               diversity_mean_weight: float = DIVERSITY_MEAN_WEIGHT,
               class_weights: Sequence[float] | None = None) -> CRNLoss:
    """The VGG-19 features and CRN loss a run asks for (train.py's options, the bench's step).

    `vgg_weights`: imagenet, a .h5/.mat path, or None / "random"; `layer_weights`: "original"
    (the release's constants for this preset and loss, `nn.presets.release_layer_weights`) or
    "auto"; `precision`: a `core.precision` name; `class_weights`: per layout channel, or None.
    Call inside `strategy.scope()`.
    """
    from crn_tf.core.precision import get_precision
    from crn_tf.loss.vgg import VGG19Features
    from crn_tf.nn.presets import release_layer_weights

    weights = None if vgg_weights in (None, "random") else vgg_weights
    policy = get_precision(precision).training_policy
    dtype = {"dtype": policy} if policy else {}
    features = VGG19Features(weights, pooling=vgg_pooling, **dtype)
    if recompute:
        # The loss's VGG activations are as large as the generator's at 1024p: recompute both.
        from crn_tf.loss.recompute import RecomputedVGGFeatures

        features = RecomputedVGGFeatures(features)
    weights_name = AUTO if layer_weights == AUTO else release_layer_weights(diversity, preset)
    return CRNLoss(features, layer_weights=weights_name, diversity=diversity, rescale_epoch=rescale_epoch,
                   diversity_mean_weight=diversity_mean_weight, class_weights=class_weights)
