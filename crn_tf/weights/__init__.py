"""Where weights come from and go: checkpoint directories, the authors' TF1 checkpoints, resumable
downloads and the published models' registry (the `--checkpoint NAME` resolver)."""
