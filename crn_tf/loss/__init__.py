"""The perceptual loss: VGG-19 features and their weights, `CRNLoss` (single-image and diversity),
and VGG recomputed in segments for `--recompute`."""
