"""Predicting outside the pipeline: reading image files and asking a registered model."""
