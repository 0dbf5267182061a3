"""Command lines: `tf-sparse-gen {train,evaluate,explore,export} [flags]`.

Each sub-command is the same absl program as the repository's train.py /
evaluate.py / explore.py (and `export`); `tf-sparse-gen <command> --help` lists its flags.
TensorFlow's C++ start-up lines are filtered from stderr (`tf_sparse_gen.quiet`).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train a model (a new run directory, or resume one)",
    "evaluate": "metrics.json and report.html of a trained run",
    "explore": "applications and interpretation tasks on a trained run",
    "export": "write a run's SavedModel",
}


def show_flags_in_help(module_name: str) -> None:
    """Makes --help list `module_name`'s flags: absl lists those of the program (sys.argv[0]) only."""
    from absl import flags

    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_program(module_name: str, main) -> None:
    """Runs an absl `main` as a command: TensorFlow's C++ lines filtered, the module's flags in --help."""
    from absl import app

    from tf_sparse_gen.quiet import quiet_tensorflow

    quiet_tensorflow()
    show_flags_in_help(module_name)
    app.run(main)


def main(argv=None) -> None:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help") or argv[1] not in COMMANDS:
        lines = "\n".join(f"  {name:9s} {text}" for name, text in COMMANDS.items())
        print(f"usage: tf-sparse-gen <command> [flags]\n\ncommands:\n{lines}\n\n"
              "`tf-sparse-gen <command> --help` lists a command's flags.")
        if len(argv) >= 2 and argv[1] not in ("-h", "--help", "help"):
            print(f"tf-sparse-gen: unknown command {argv[1]!r}", file=sys.stderr)
            sys.exit(2)
        return
    command = argv[1]
    module = importlib.import_module(f"tf_sparse_gen.cli.{command}")
    sys.argv = [f"tf-sparse-gen {command}", *argv[2:]]
    module.run()
