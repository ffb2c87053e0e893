"""The network: resampling ops, the paper's layers, the `CRN` model and its presets, and the
inference pass (plain or in row bands) with its memory estimate and CPU-specific kernels."""
