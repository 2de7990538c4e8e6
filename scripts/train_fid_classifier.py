"""Train the LeNet digit classifier that `metrics=fid_lenet` uses, and save its weights.

    python scripts/train_fid_classifier.py [--out PATH] [--epochs N]

Deterministic: the same command writes the same weights (and weights checksum) on the same
torch build. The committed file is src/genlab/metrics/weights/lenet_mnist.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console

from genlab.metrics.lenet import WEIGHTS_FILE, train_lenet, weights_sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE, help="where to write the weights")
    parser.add_argument("--epochs", type=int, default=15, help="passes over the 4,000 digits")
    args = parser.parse_args()
    console = Console()
    with console.status("training the FID classifier on the embedded MNIST digits"):
        model, acc = train_lenet(epochs=args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(args.out)
    console.print(f"held-out accuracy: {acc:.4f} (1,000 digits)")
    console.print(f"wrote {args.out}\nweights sha256 {weights_sha256(model.state_dict())}")


if __name__ == "__main__":
    main()
