"""Segmentation plugin (MMSegmentation 1.x). Not implemented in this release."""
