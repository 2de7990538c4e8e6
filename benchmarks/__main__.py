"""`python -m benchmarks` (what `make bench` runs)."""

from benchmarks.cli import main

if __name__ == "__main__":
    main()
