"""Makes a shipped run, pretrained/<name>/, from a trained run directory.

  .venv/bin/python scripts/make_pretrained.py --model_dir=~/runs/andor_long --name=andor_fashion_mnist

Writes config.json, a slim checkpoint (no optimiser slots, no per-example latents; the
averaged generator weights where the run kept an EMA), the SavedModel export and
pretrained.json (source run, step, and the command given with --command), then checks
the size limit (10 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

LIMIT_BYTES = 10 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--name", required=True, help="pretrained/<name>, e.g. andor_fashion_mnist")
    parser.add_argument("--command", default=None, help="the training command(s) that made the run, recorded")
    args = parser.parse_args()
    from tf_sparse_gen.pretrained import make_slim_run

    out = os.path.join(REPO, "pretrained", args.name)
    meta = make_slim_run(os.path.expanduser(args.model_dir), out, command=args.command)
    print(json.dumps(meta, indent=2))
    if meta["bytes"] > LIMIT_BYTES:
        print(f"make_pretrained: {out} is {meta['bytes'] / 2**20:.1f} MB, above the 10 MB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
