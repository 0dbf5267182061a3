"""Evaluate entry point: `python evaluate.py --help` (also `tf-sparse-gen evaluate` once installed).

The flags and their code are in tf_sparse_gen/cli/evaluate.py.
"""

from tf_sparse_gen.cli.evaluate import run

if __name__ == "__main__":
    run()
