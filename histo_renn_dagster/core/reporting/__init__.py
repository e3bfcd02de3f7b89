"""Tidy result tables and the analysis figures of the RENN study.

Modules: ``results`` (the flat ``renn_results_*`` tables from every ``models/m=<m>/`` folder),
``reference`` (exact ML reference fit and site effects), ``style`` (colours per model, fonts,
stable PNGs), ``figures_training`` / ``figures_over_m`` / ``figures_predictions`` /
``figures_sites`` / ``gallery`` (one family of figures each), ``provenance`` (data release,
backbone, weights), ``html`` (report.html) and ``report`` (renders the whole set).
"""
