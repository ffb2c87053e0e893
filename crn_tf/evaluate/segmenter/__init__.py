"""A segmenter for your own data: a compact U-Net trained on photo -> label pairs, for the segmentation score.

`python -m crn_tf.evaluate.segmenter train DATA --out DIR` trains it (network.py, training.py)
and writes `DIR/saved_model`, the SavedModel `crn_tf.evaluate --segmenter DIR` takes (export.py);
`python -m crn_tf.evaluate.segmenter score DATA --segmenter DIR` scores it on real photos
(scoring.py). See docs/evaluate.md.
"""
