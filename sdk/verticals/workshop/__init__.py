"""The fine-tuning workshop: hyperparameter search, data checks."""
