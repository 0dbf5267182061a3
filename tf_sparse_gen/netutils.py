"""Architectures (plain Keras models) of the model families."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator, List, Optional, TypeVar

import keras
import numpy as np

L = TypeVar("L")


def track_layers(model: keras.Model, layers: List[L], prefix: Optional[str] = None) -> List[L]:
    """Registers each layer of a list as a named checkpoint dependency of `model`; returns the list.

    Keras 3 collects the weights of layers held in lists, but `tf.train.Checkpoint`
    does not follow Keras' tracked lists: without this their variables are saved
    only indirectly (through an optimizer's variable list, if any), and a model
    restored without optimizers (evaluation, export) would silently keep its
    initial weights. The checkpoint key is `{prefix}{i}`, or the layer's name
    when no prefix is given (names must then be explicit, hence stable).
    """
    for i, layer in enumerate(layers):
        if layer is not None:
            model._track_trackable(layer, name=f"{prefix}{i}" if prefix else layer.name, overwrite=True)
    return layers


def batch_norm(**kwargs) -> keras.layers.BatchNormalization:
    """BatchNormalization whose batch statistics span the global batch under tf.distribute.

    With several replicas each would otherwise normalise by its own share of the
    batch, so a mirrored step would differ from the same step on one device. On
    one replica `synchronized=True` changes nothing.
    """
    return keras.layers.BatchNormalization(synchronized=True, **kwargs)


@contextlib.contextmanager
def seeded_construction(seed: int) -> Iterator[None]:
    """Builds networks inside as if the process had just been seeded with `seed`, then restores the caller's state.

    Keras 3 initialisers without an explicit seed draw it from Python's `random` at
    construction (and `keras.random` from the global SeedGenerator), so reseeding
    Python's and NumPy's generators and dropping the global SeedGenerator reproduces
    the initial weights of a model built right after `keras.utils.set_random_seed(seed)`.
    On exit the three are put back, so the caller's later draws do not depend on
    whether this ran. TensorFlow's global seed is left alone: Keras' TensorFlow
    backend draws with stateless ops from the seeds above.

    Args:
        seed: the seed the original model was built under (`train.seed`).
    """
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    python_state, numpy_state = random.getstate(), np.random.get_state()
    keras_generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    keras_seed = global_state.get_global_attribute("global_random_seed")
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, keras_generator)
        global_state.set_global_attribute("global_random_seed", keras_seed)
