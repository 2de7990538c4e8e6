"""The config: its typed schema and the checks of a composed config against it."""
