"""Training: negative sampling, the trainer with early stopping, the full-ranking evaluator."""
