"""Small helpers shared by the entry points: paths, errors, config checks."""
