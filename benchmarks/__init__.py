"""`make bench`: how fast genlab trains and evaluates, and what Lightning costs over a bare loop.

- `training`: images/s of each model through genlab's own Trainer path against a plain
  PyTorch loop on the same networks, optimiser, batch and data, in alternating windows.
- `evaluation`: generation throughput and the time of an FID evaluation, split into
  feature extraction and the Frechet distance.
- `report`: versions, device, peak memory, the table and the JSON file.
"""
