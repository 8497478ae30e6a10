"""The fine-tuning workshop: hyperparameter search (``verticals tune``), data checks before training
(``verticals check``), and the other steps a consultant does by hand around
a fine-tuning run."""
