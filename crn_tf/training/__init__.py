"""Training CRNs: `train.py` / `crn-train` and the library behind it.

- `options`: `TrainOptions`, the one options object (flags, auto defaults, opt.txt / options.json);
- `run`: `train(options)`, one run from options to `RUN_DIR/model/`;
- `loop`: `CRNTrainer`, the tf.function train step and the epoch loop;
- `actions`: what the loop calls at its boundaries (progress bar, loss log, TensorBoard, the
  "auto" rescale, sample grid, checkpoint, model directory);
- `data`: `EpochData`, batches in a seeded, resumable per-epoch order;
- `modules`: the generator from options, `--init-from`, `--train-modules`;
- `state`: `RunState` (tf.train checkpoints of the run) and `StopRequest` (SIGINT/SIGTERM);
- `strategy`: choosing the tf.distribute strategy;
- `callbacks`, `visualizer`: loss log, TensorBoard, sample grids and their page (the progress bar is `crn_tf.core.progress`);
- `cli`: `main()` of `crn-train`.
"""
