"""An independent NumPy implementation of the CRN equations (CRN_FACTS.md), for tests only."""
import numpy as np


def conv2d_same(x, kernel, bias=None):
    """x [H, W, Cin], kernel [kh, kw, Cin, Cout], stride 1, SAME zero padding."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    height, width = x.shape[:2]
    out = np.zeros((height, width, kernel.shape[-1]), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            out += padded[i : i + height, j : j + width] @ kernel[i, j]
    return out if bias is None else out + bias


def layer_norm(x, gamma, beta, epsilon=1e-12):
    """Mean and variance over (H, W, C) of one sample, then per-channel gamma, beta."""
    return (x - x.mean()) / np.sqrt(x.var() + epsilon) * gamma + beta


def lrelu(x):
    return np.maximum(0.2 * x, x)


def area_downsample(x, size):
    """Mean of each f x f block."""
    height, width, channels = x.shape
    fh, fw = height // size[0], width // size[1]
    return x.reshape(size[0], fh, size[1], fw, channels).mean(axis=(1, 3))


def _bilinear_axis(length_in, length_out):
    """Source positions with align_corners=True: o * (in - 1) / (out - 1)."""
    scale = (length_in - 1) / (length_out - 1) if length_out > 1 else 0.0
    position = np.arange(length_out) * scale
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, length_in - 1)
    return low, high, position - low


def upsample_align_corners(x, size):
    rows_low, rows_high, row_frac = _bilinear_axis(x.shape[0], size[0])
    cols_low, cols_high, col_frac = _bilinear_axis(x.shape[1], size[1])
    rows = x[rows_low] * (1 - row_frac)[:, None, None] + x[rows_high] * row_frac[:, None, None]
    return rows[:, cols_low] * (1 - col_frac)[None, :, None] + rows[:, cols_high] * col_frac[None, :, None]


def crn_forward(layout, modules, output_kernel, output_bias, num_images):
    """layout [H, W, C]; modules: list of dicts conv1, gamma1, beta1, conv2, gamma2, beta2 (M_0 first).

    Returns images [k, H, W, 3] on the 0..255 scale, image j from channels (j, k + j, 2k + j).
    """
    height, width = layout.shape[:2]
    count = len(modules)
    features = None
    for index, weights in enumerate(modules):
        factor = 2 ** (count - 1 - index)
        scaled = area_downsample(layout, (height // factor, width // factor))
        if features is None:
            x = scaled
        else:
            x = np.concatenate([upsample_align_corners(features, scaled.shape[:2]), scaled], axis=-1)
        x = lrelu(layer_norm(conv2d_same(x, weights["conv1"]), weights["gamma1"], weights["beta1"]))
        features = lrelu(layer_norm(conv2d_same(x, weights["conv2"]), weights["gamma2"], weights["beta2"]))
    out = (conv2d_same(features, output_kernel, output_bias) + 1) / 2 * 255
    return np.stack([out[..., [j, num_images + j, 2 * num_images + j]] for j in range(num_images)])
