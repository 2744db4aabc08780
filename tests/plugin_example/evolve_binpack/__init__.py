"""Online bin packing for evolve: this package's folder holds problem.toml."""
