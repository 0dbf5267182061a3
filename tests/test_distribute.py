"""tf.distribute: a mirrored step over two logical CPUs equals the same step on one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import keras
import tensorflow as tf

from tf_sparse_gen import trainer
from tf_sparse_gen.config import ConfigError, get_config
from tf_sparse_gen.data import load_dataset
from tf_sparse_gen.families import MODELS, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Per-family settings that make a mirrored step comparable with one device (default: none).
EXACT_SETTINGS = {
    "spgan": {"spgan.n_critic": 2, "spgan.n_reconst": 1},
    # All of G's inputs are anchors E(x): which images are anchors is decided within a replica's share
    # of the batch, the one part of a step that differs.
    "selfexgan": {"selfexgan.anchor_fraction": 1.0},
}


def _config(family, **overrides):
    base = {"data.dataset": "digits", "train.train_minutes": 0.0, "train.batch_size": 4}
    base.update(EXACT_SETTINGS.get(family, {}))
    base.update(overrides)
    return get_config(family, "tiny", base)


def _mirrored():
    """The process's MirroredStrategy (the harness's), over the two logical CPUs conftest makes."""
    strategy = trainer.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, "conftest splits the CPU into two logical devices"
    return strategy


# Plain SGD: Adam is invariant to the scale of the gradients (a missing 1 / replicas would go
# unnoticed) and amplifies rounding differences where a gradient is near zero.
OPTIMIZERS = {"andor": ("g_optimizer", "c_optimizer"), "spgan": ("g_optimizer", "d_optimizer", "e_optimizer"),
              "selfexgan": ("g_optimizer", "e_optimizer", "d1_optimizer", "d2_optimizer")}


def _build(config, source, strategy, sgd=False):
    with strategy.scope():
        model = build_model(config, source.num_examples, source.image_shape)
        model.compile(**({name: keras.optimizers.SGD(0.05) for name in OPTIMIZERS[config.model]} if sgd else {}))
    return model


def _state(model):
    """Trainable weights, BatchNorm statistics and persistent latents, keyed by position and name."""
    variables = list(model.trainable_variables)
    variables += [v for v in model.non_trainable_variables if "moving" in v.name]
    state = {f"{i}:{v.name}": np.array(v.numpy()) for i, v in enumerate(variables)}
    if hasattr(model, "latents"):
        state[LATENTS] = model.latents.numpy().copy()
    return state


LATENTS = "persistent latents"


@pytest.mark.parametrize("family", MODELS)
def test_mirrored_step_equals_one_device_step(family, tmp_path):
    config = _config(family)
    source = load_dataset("digits", "train", config.data.image_size, config.data.channels)
    single = _build(config, source, tf.distribute.get_strategy(), sgd=True)
    single.prepare(source)  # one-off set-up of a fresh run (the Sparse GAN's dictionary)
    # The mirrored model starts from the single-device model's checkpoint (restoring
    # across strategies), with optimizers and RNG state fresh in both.
    path = tf.train.Checkpoint(model=single).write(str(tmp_path / "init"))
    mirrored = _build(config, source, _mirrored(), sgd=True)
    tf.train.Checkpoint(model=mirrored).read(path).assert_existing_objects_matched()
    before = _state(single)
    np.testing.assert_equal(_state(mirrored), before)

    data = source.train_dataset(config.train.batch_size, seed=0).take(2)
    for model in (single, mirrored):
        model.fit(data, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    a, b = _state(single), _state(mirrored)
    moved = [k for k in a if not np.array_equal(a[k], before[k])]
    assert len(moved) > len(a) // 2, f"{family}: too few variables moved in two steps"
    for key in a:
        # The updates agree to 5% in norm (a missing or doubled 1 / replicas scaling would be off
        # by 50-100%). Not element by element: float32 reductions over two replicas run in another
        # order and synchronised batch statistics use sums of squares; over two steps that can flip
        # a few ReLUs and move single elements by several per cent of the largest update.
        update_a, update_b = a[key] - before[key], b[key] - before[key]
        scale, diff = np.linalg.norm(update_a), np.linalg.norm(update_b - update_a)
        assert diff <= 0.05 * scale + 1e-7, f"{family}: {key}: |update difference| {diff:.3g}, |update| {scale:.3g}"
    assert int(mirrored.nonfinite_streak.numpy()) == 0
    if hasattr(mirrored, "latents"):  # Langevin updated the persistent latents of every replica's examples
        seen = np.concatenate([batch[0].numpy() for batch in data])
        changed = np.flatnonzero(np.any(b[LATENTS] != before[LATENTS], axis=1))
        np.testing.assert_array_equal(changed, np.unique(seen))
    logs_a = {m.name: float(m.result()) for m in single.metrics}
    logs_b = {m.name: float(m.result()) for m in mirrored.metrics}
    assert set(logs_a) == set(logs_b)


def test_train_mirrored_then_resume_on_one_device(tmp_path):
    model_dir = str(tmp_path / "run")
    config = _config("andor", **{"train.train_steps": 2, "train.strategy": "mirrored"})
    summary = trainer.train(config, model_dir, log=lambda s: None)
    assert summary["replicas"] == 2 and summary["final_step"] == 2
    resumed = trainer.train(_config("andor", **{"train.train_steps": 4}), model_dir, log=lambda s: None)
    assert resumed["resumed"] and resumed["start_step"] == 2 and resumed["final_step"] == 4
    assert resumed["replicas"] == 1


def test_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path):
    config = _config("andor", **{"train.batch_size": 3, "train.strategy": "mirrored"})
    with pytest.raises(ConfigError, match=r"--batch_size=3 does not split over the 2 replicas.*multiple of 2"):
        trainer.train(config, str(tmp_path / "run"), log=lambda s: None)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.slow
def test_multiworker_over_two_local_processes(tmp_path):
    """Two workers on loopback (TF_CONFIG) train one run; the chief alone writes model_dir."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    model_dir = tmp_path / "run"
    procs = []
    for task in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}}))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "train.py"), "--model=andor", "--preset=tiny", "--dataset=digits",
             f"--model_dir={model_dir}", "--strategy=multiworker", "--train_steps=3", "--batch_size=4",
             "--train_minutes=0"], cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        finally:
            p.kill()
        outs.append((p.returncode, out, err))
    for code, out, err in outs:
        assert code == 0, err[-3000:]
    chief, other = (json.loads(out.strip().splitlines()[-1]) for _, out, _ in outs)
    assert chief["final_step"] == other["final_step"] == 3 and chief["replicas"] == 2
    assert chief["checkpoint"].startswith(str(model_dir))
    assert not other["checkpoint"].startswith(str(model_dir)) and not os.path.exists(other["checkpoint"] + ".index")
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("-3")
    assert json.loads((model_dir / "config.json").read_text())["train"]["strategy"] == "multiworker"
