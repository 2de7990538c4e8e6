"""Run directories, result.yaml, sweep summaries and W&B run continuity."""
