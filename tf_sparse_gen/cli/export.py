"""Export a trained run's SavedModel (generate / encode / reconstruct signatures).

  tf-sparse-gen export --model_dir=runs/x                 # into runs/x/export
  tf-sparse-gen export --model_dir=runs/x --out_dir=/srv/model
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Run directory written by train.py.", required=True)
flags.DEFINE_string("out_dir", None, "Where the SavedModel goes (default: model_dir/export).")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (default: the latest).")


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from tf_sparse_gen import export
    from tf_sparse_gen.config import ConfigError

    try:
        path = export.export_model(FLAGS.model_dir, FLAGS.out_dir, FLAGS.checkpoint)
    except ConfigError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported SavedModel to {path}")
    return 0


def run() -> None:
    """Console-script entry point (`tf-sparse-gen-export`, and `tf-sparse-gen export`)."""
    from tf_sparse_gen.cli import run_program

    run_program(__name__, main)


if __name__ == "__main__":
    run()
