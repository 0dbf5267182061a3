"""Train entry point: `python train.py --help` (also `tf-sparse-gen train` once installed).

The flags and their code are in tf_sparse_gen/cli/train.py.
"""

from tf_sparse_gen.cli.train import run

if __name__ == "__main__":
    run()
