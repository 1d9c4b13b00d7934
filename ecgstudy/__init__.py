"""ecgstudy: a reproducible study of ECG foundation models.

All logic of the DVC pipeline lives here; the notebooks under ``notebooks/`` are thin callers.
Importing the package has no side effects.
"""

__version__ = "0.1.0"
