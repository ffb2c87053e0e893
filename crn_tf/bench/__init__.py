"""The benchmark (`python -m crn_tf.bench`): timing runs, FLOP counts, the conv peak on the
workload's own shapes, op profiles, the PyTorch peers and the report."""
