"""The model: Keras architectures, the training recipe, and test-set scoring."""
