"""histo-renn-dagster: learn gene expression from H&E whole-slide images with site random effects."""

__version__ = "0.1.0"
