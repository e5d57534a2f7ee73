"""Data: upstream parsers, preprocessing, the split container and auxiliary graphs."""
