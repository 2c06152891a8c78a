"""The side-by-side gateway benchmark (``bench/compare.py``): servers, load, report."""
