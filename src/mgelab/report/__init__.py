"""Figures and tables made from runs: a finished run's learning curves and confusion matrix
(``plots``), and tracked runs side by side (``compare`` for the table, ``compare_plots`` for the PNGs)."""
