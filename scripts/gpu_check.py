"""`make gpu-check`: the GPU path measured in one bounded run (code: genlab.bench.gpu_check)."""

from genlab.bench.gpu_check_cli import main

if __name__ == "__main__":
    main()
