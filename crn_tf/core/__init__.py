"""Foundations every other part uses: atomic files and locks, the progress bar, sizes, precision
names, machine facts, images and the HTML page, the quiet start of a CLI. No TensorFlow at import."""
