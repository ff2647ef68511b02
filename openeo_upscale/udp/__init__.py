"""UDPs shipped with openeo-upscale (JSON files beside this module)."""

from pathlib import Path

UDP_DIR = Path(__file__).parent
"""Folder of the shipped UDP JSON files."""
