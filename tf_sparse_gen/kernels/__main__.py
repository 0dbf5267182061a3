"""`python -m tf_sparse_gen.kernels build [--force] | status`: build or check the compiled kernels."""

import argparse
import sys

from tf_sparse_gen import kernels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_sparse_gen.kernels", description=__doc__)
    parser.add_argument("command", choices=["build", "status"])
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date library exists")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            path = kernels.build(force=args.force, verbose=True)
        except kernels.KernelBuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"built {path}")
    if not kernels.available():
        print(f"top-k kernel unavailable: {kernels.unavailable_reason()}", file=sys.stderr)
        return 1
    print(f"top-k kernel available: {kernels.library_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
