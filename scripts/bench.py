"""`make bench`: genlab's training and evaluation benchmark (the code is genlab.bench)."""

from genlab.bench.cli import main

if __name__ == "__main__":
    main()
