"""Architectures (plain Keras models) of the model families."""

from __future__ import annotations

from typing import List, Optional, TypeVar

import keras

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
