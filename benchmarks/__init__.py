"""`make bench`: how fast genlab trains and evaluates, and what Lightning costs over a bare loop.

- `training`: images/s of each model through genlab's own Trainer path against a plain
  PyTorch loop on the same networks, optimiser, batch and data, in alternating windows.
- `evaluation`: generation throughput and the time of an FID evaluation, split into
  feature extraction and the Frechet distance.
- `report`: versions, device, peak memory, the table and the JSON file.
"""

import os

from genlab.config.instantiate import TRUSTED_MODULES_ENV

# The benchmarks live outside the package, like a user's code: their callbacks and
# near-zero networks are built from configs, so they trust their own module by name.
_trusted = [m for m in os.environ.get(TRUSTED_MODULES_ENV, "").split(",") if m.strip()]
os.environ[TRUSTED_MODULES_ENV] = ",".join(dict.fromkeys([*_trusted, "benchmarks"]))
