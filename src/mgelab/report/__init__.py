"""Figures made from a finished run (learning curves, confusion matrix)."""
