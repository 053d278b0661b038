"""Shared infrastructure of NeuroCascade: typed configs, user errors, atomic file writes, the TF import."""
