"""Data the local backend serves: synthetic collections generated on the fly, no files, no network."""
