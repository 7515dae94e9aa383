"""Scripts that measure speed and quality; results in RESULTS.md."""
