"""Speed benchmark: seconds per epoch, per full-ranking evaluation and peak memory of every model."""
