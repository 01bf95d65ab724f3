"""One trial: the model, its data, the training loop, its evaluation."""
