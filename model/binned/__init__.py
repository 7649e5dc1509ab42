"""binned layer."""
