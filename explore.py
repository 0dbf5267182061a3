"""Explore entry point: `python explore.py --help` (also `tf-sparse-gen explore` once installed).

The flags and their code are in tf_sparse_gen/cli/explore.py.
"""

from tf_sparse_gen.cli.explore import run

if __name__ == "__main__":
    run()
