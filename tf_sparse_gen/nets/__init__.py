"""Architectures (plain Keras models) of the model families."""

from __future__ import annotations

from typing import List, TypeVar

import keras

L = TypeVar("L")


def track_layers(model: keras.Model, layers: List[L]) -> List[L]:
    """Registers each layer of a list as a named checkpoint dependency of `model`; returns the list.

    Keras 3 collects the weights of layers held in lists, but `tf.train.Checkpoint`
    does not follow Keras' tracked lists: without this their variables are saved
    only indirectly (through an optimizer's variable list, if any), and a model
    restored without optimizers (evaluation, export) would silently keep its
    initial weights. Layer names must be stable (given explicitly), as they
    become checkpoint keys.
    """
    for layer in layers:
        if layer is not None:
            model._track_trackable(layer, name=layer.name, overwrite=True)
    return layers
