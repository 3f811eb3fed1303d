"""Evaluation: separation metrics with permutation matching, baselines, classifiers."""
