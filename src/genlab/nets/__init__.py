"""Plain `nn.Module` architectures. Nothing here knows about Lightning, files or loggers."""
