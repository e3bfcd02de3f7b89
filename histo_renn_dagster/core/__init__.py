"""Plain-Python science and I/O. Nothing under ``core`` imports dagster (a test enforces it)."""
