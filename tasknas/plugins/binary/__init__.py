"""Binary-network plugin: binary ops, BATS/CP-NAS/BNAS search spaces and their trainer. Not implemented in
this release."""
