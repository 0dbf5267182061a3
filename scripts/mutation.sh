#!/usr/bin/env bash
# Mutation testing of the equations (issue #13) with cosmic-ray (pinned in requirements-dev.txt).
# Not part of CI nor of scripts/run_tests.sh: it runs one pytest process per mutant (~10 s each).
#
#   bash scripts/mutation.sh                 # every target, one after the other
#   bash scripts/mutation.sh losses stats    # some targets (see TARGETS below)
#   MUTATION_INIT_ONLY=1 bash scripts/mutation.sh   # only create the sessions and count the mutants
#   MUTATION_SAMPLE=0.3 bash scripts/mutation.sh layers   # a seeded random 30% of the mutants
#   MUTATION_RESUME=1 bash scripts/mutation.sh losses      # continue an interrupted session (results kept)
#
# Each target mutates one module (restricted to the functions listed, by line ranges computed
# from the source with `ast`) and runs only the tests that exercise that code, with a per-mutant
# timeout. The mutants are written to disk, so every target works in its own copy of the
# committed tree (git archive HEAD) under $MUTATION_WORKDIR (default /tmp/tfsg-mutation),
# never in the working tree. Results: tests/mutation/raw/<target>.txt (cr-report, survivors
# with their diffs) and a summary line per target in tests/mutation/raw/summary.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
BIN="$ROOT/.venv/bin"
WORK=${MUTATION_WORKDIR:-/tmp/tfsg-mutation}
OUT="$ROOT/tests/mutation/raw"
TIMEOUT=${MUTATION_TIMEOUT:-60}
mkdir -p "$OUT"
"$PY" -c "import cosmic_ray" 2>/dev/null || "$PY" -m pip install -q -r "$ROOT/requirements-dev.txt"

# Operators left out everywhere (documented in tests/mutation/REPORT.md): replacing an arithmetic
# or comparison operator by a bitwise or shift operator (on float tensors a TypeError at the first
# call: killed by any test, 5 of the 11 replacements of every operator), and operators that do not
# touch the equations (decorators, exception types, inserting/replacing variables at random).
EXCLUDE='"core/ReplaceBinaryOperator_.*_(BitAnd|BitOr|BitXor|LShift|RShift)$", "core/ReplaceBinaryOperator_(BitAnd|BitOr|BitXor|LShift|RShift)_.*", "core/RemoveDecorator", "core/ExceptionReplacer", "core/VariableInserter", "core/VariableReplacer"'

PYTEST="-x -q -p no:cacheprovider"
# target | module (alternatives separated by ":", the first that exists is used) | functions to
# mutate ("*" = the whole module) | pytest arguments
TARGETS=(
  "losses|tf_sparse_gen/losses.py|*|tests/test_equations.py tests/test_family_losses.py"
  "cooperative|tf_sparse_gen/models/cooperative.py:tf_sparse_gen/families/andor/model.py|CooperativeAndOrModel.critic_weight CooperativeAndOrModel.langevin CooperativeAndOrModel._langevin_from_zero CooperativeAndOrModel._infer CooperativeAndOrModel.infer_latent CooperativeAndOrModel.encode CooperativeAndOrModel.store_latents CooperativeAndOrModel.train_step|tests/test_equations.py tests/test_family_losses.py -k andor_or_langevin_or_infer_or_critic_weight"
  "spgan|tf_sparse_gen/models/spgan.py:tf_sparse_gen/families/spgan/model.py|SparseGAN._latents SparseGAN.critic_step SparseGAN.generator_step SparseGAN.encoder_step SparseGAN.reconstruction_step SparseGAN.train_step|tests/test_family_losses.py -k spgan"
  "selfexgan|tf_sparse_gen/models/selfexgan.py:tf_sparse_gen/families/selfexgan/model.py|SelfExGAN.num_anchors SelfExGAN.generator_inputs SelfExGAN.d2_pairs SelfExGAN.split_by_label SelfExGAN.train_step|tests/test_family_losses.py tests/test_equation_survivors.py tests/test_selfexgan.py -k selfexgan_step_or_selexgan_step_or_generator_inputs_or_d2_pairs_or_train_step_gives"
  "layers|tf_sparse_gen/layers.py|TopKSparsity.kept_count TopKSparsity.mask TopKSparsity._exact_mask TopKSparsity.call SphereProjection.resolved_radius SphereProjection.call SoftThreshold.current_threshold SoftThreshold.call PatchDictionaryDecoder.set_dictionary PatchDictionaryDecoder.kernel PatchDictionaryDecoder.overlap_count PatchDictionaryDecoder.call|tests/test_layer_equations.py tests/test_layers.py tests/test_spgan.py tests/test_selfexgan.py -k test_layers_or_layer_equations_or_patch_decoder_or_soft_threshold_or_sphere"
  "stats|tf_sparse_gen/metrics/stats.py|*|--noconftest tests/test_stats_reference.py tests/test_metrics.py -k not_fmnist_and_not_inception_builds_and_not_inception_missing_and_not_ncc_and_not_collected_and_not_shifted"
)

line_ranges() {  # module, functions -> TOML list of "start-end" strings
  "$PY" - "$1" "$2" <<'EOF'
import ast, sys
path, names = sys.argv[1], sys.argv[2].split()
tree = ast.parse(open(path).read())
found = {}
for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        found[node.name] = (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno)
for node in ast.walk(tree):
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([item.lineno] + [d.lineno for d in item.decorator_list])
                found[f"{node.name}.{item.name}"] = (start, item.end_lineno)
missing = [n for n in names if n not in found]
if missing:
    sys.exit(f"mutation.sh: no such function(s) in {path}: {missing}")
print(", ".join(f'"{found[n][0]}-{found[n][1]}"' for n in names))
EOF
}

run_target() {
  local name=$1 module=$2 funcs=$3 args=$4
  local dir="$WORK/$name"
  local resume=""
  [[ -n "${MUTATION_RESUME:-}" && -f "$dir/session.sqlite" ]] && resume=1
  if [[ -z "$resume" ]]; then
  rm -rf "$dir" && mkdir -p "$dir"
  git -C "$ROOT" archive HEAD | tar -x -C "$dir"
  cp "$ROOT"/tf_sparse_gen/kernels/_topk_mask.*.so "$dir/tf_sparse_gen/kernels/" 2>/dev/null || true
  local m found=""
  for m in ${module//:/ }; do [[ -f "$dir/$m" ]] && { found=$m; break; }; done
  [[ -n "$found" ]] || { echo "mutation.sh: $name: none of $module exists"; exit 1; }
  module=$found
  if [[ "$args" == --noconftest* ]]; then
    # NumPy-only module and tests: in this scratch copy the package's __init__ (which imports
    # TensorFlow) is emptied, so a mutant's test run takes ~1 s instead of ~7 s. The mutated
    # module itself imports nothing from the package.
    : > "$dir/tf_sparse_gen/__init__.py"
  fi
  fi  # not resuming
  # pytest -k takes one argument: "_or_"/"_and_"/"not_" stand for the spaces.
  local files=${args%% -k *} kexpr=""
  if [[ "$args" == *" -k "* ]]; then kexpr=${args##* -k }; kexpr=${kexpr//_or_/ or }; kexpr=${kexpr//_and_/ and }; kexpr=${kexpr//not_/not }; fi
  local sock="$dir/runner.sock" notf=""
  [[ "$args" == --noconftest* ]] && notf="--no-tf"
  local cmd="python $ROOT/scripts/mutation_runner.py run $sock -- $PYTEST $files"
  [[ -n "$kexpr" ]] && cmd="$cmd -k '$kexpr'"
  [[ -n "$resume" ]] || {
    echo "[cosmic-ray]"
    echo "module-path = \"$module\""
    echo "timeout = $TIMEOUT"
    echo "excluded-modules = []"
    echo "test-command = \"$(echo "$cmd" | sed 's/"/\\"/g')\""
    echo "[cosmic-ray.distributor]"
    echo "name = \"local\""
    echo "[cosmic-ray.filters.operators-filter]"
    echo "exclude-operators = [$EXCLUDE]"
    if [[ "$funcs" != "*" ]]; then
      echo "[cosmic-ray.filters.line-filter.lines]"
      echo "\"$module\" = [$(cd "$dir" && line_ranges "$module" "$funcs")]"
    fi
  } > "$dir/cosmic-ray.toml"
  cd "$dir"
  export TF_CPP_MIN_LOG_LEVEL=2 PATH="$BIN:$PATH"
  if [[ -z "$resume" ]]; then
    rm -f session.sqlite
    "$BIN/cosmic-ray" init cosmic-ray.toml session.sqlite
    "$BIN/cr-filter-operators" session.sqlite cosmic-ray.toml
    [[ "$funcs" != "*" ]] && "$BIN/cr-filter-lines" session.sqlite --config cosmic-ray.toml
  fi
  if [[ -n "${MUTATION_SAMPLE:-}" ]]; then
    # Run only a seeded random fraction of the remaining mutants (the rest are marked skipped).
    "$PY" - "$MUTATION_SAMPLE" <<'EOF2'
import random, sys
from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkResult, WorkerOutcome
with use_db("session.sqlite") as db:
    pending = sorted(item.job_id for item in db.pending_work_items)
    keep = set(random.Random(13).sample(pending, round(float(sys.argv[1]) * len(pending))))
    drop = [j for j in pending if j not in keep]
    if drop:
        db.set_multiple_results(drop, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED))
EOF2
  fi
  local total pending
  total=$(sqlite3_count "SELECT count(*) FROM work_items")
  pending=$(sqlite3_count "SELECT count(*) FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results)")
  echo "mutation.sh: $name: $pending mutants to run (of $total generated; the rest filtered)"
  if [[ -n "${MUTATION_INIT_ONLY:-}" ]]; then return; fi
  # The fork server (scripts/mutation_runner.py): TensorFlow is imported once per target, not per mutant.
  PYTHONDONTWRITEBYTECODE=1 "$PY" "$ROOT/scripts/mutation_runner.py" serve "$sock" $notf > "$dir/runner.log" 2>&1 &
  local server=$!
  trap "kill $server 2>/dev/null || true" EXIT
  for _ in $(seq 100); do [[ -S "$sock" ]] && break; sleep 0.2; done
  "$BIN/cosmic-ray" baseline cosmic-ray.toml || { echo "mutation.sh: $name: tests fail on the unmutated code"; exit 1; }
  local t0=$SECONDS
  "$BIN/cosmic-ray" exec cosmic-ray.toml session.sqlite
  "$BIN/cr-report" --surviving-only --show-diff session.sqlite > "$OUT/$name.txt"
  local rate
  rate=$("$BIN/cr-rate" session.sqlite)
  echo "$name: $pending mutants, survival rate $rate%, $((SECONDS - t0)) s; command: $cmd" | tee -a "$OUT/summary.txt"
  kill "$server" 2>/dev/null || true
  trap - EXIT
  cd "$ROOT"
}

sqlite3_count() {
  "$PY" -c "import sqlite3, sys; print(sqlite3.connect('session.sqlite').execute(sys.argv[1]).fetchone()[0])" "$1"
}

main() {
  local selected=("$@") spec name module funcs args
  for spec in "${TARGETS[@]}"; do
    IFS='|' read -r name module funcs args <<< "$spec"
    if [[ ${#selected[@]} -eq 0 || " ${selected[*]} " == *" $name "* ]]; then
      run_target "$name" "$module" "$funcs" "$args"
    fi
  done
}
# One line, read whole before it runs: editing this file while it runs cannot change what it does.
main "$@"; exit $?
