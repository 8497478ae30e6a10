"""The fine-tuning workshop: data checks before training (``verticals check``), and the other steps a
consultant does by hand around a fine-tuning run."""
