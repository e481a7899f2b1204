"""Detection plugin (MMDetection 3.x): searchable backbones and necks, the path-sampling hook, search and
export entry points. Not implemented in this release."""
