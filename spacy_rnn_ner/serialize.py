"""Hardened loading of the component: every way a saved model can be wrong
(unreadable or corrupted files, another architecture, labels that don't
match the weights, NaN or inf weights) fails at load time with an error that
names the component and the cause, rather than later or silently. No pickle:
cfg is JSON, the model thinc's msgpack.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import srsly
from thinc.api import Model

from .tags import make_tags

# Model attr that saves the labels with the weights (a JSON list), so that a
# cfg whose labels were renamed can't silently relabel the entities.
LABELS_ATTR = "rnn_ner_labels"
# Attrs that fix a layer's parameters and computation. thinc's `from_bytes`
# checks only the number of nodes and the dims, and takes the saved attrs and
# params as they are: a saved GRU would silently run where the config says
# LSTM. Other attrs (e.g. HashEmbed seeds) are meant to come from the file.
ARCH_ATTRS = ("cell", "bidirectional", "depth")


def stamp_labels(model: Model, labels: Sequence[str]) -> None:
    """Save `labels` with the model's weights."""
    model.attrs[LABELS_ATTR] = srsly.json_dumps(list(labels))


def read_file(path: Union[str, Path], name: str) -> bytes:
    """The bytes of `path`; an OSError naming component `name` if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        # Same OSError subclass (e.g. FileNotFoundError), naming the component.
        raise OSError(
            e.errno, f"Could not load component '{name}': can't read", str(path)
        ) from e


def load_cfg(data: bytes, *, name: str, source: object) -> Dict:
    """The cfg of component `name` from JSON `data`, checked to hold a list
    of label strings."""
    try:
        cfg = srsly.json_loads(data)
        labels = cfg.get("labels", []) if isinstance(cfg, dict) else None
        if not isinstance(labels, list) or not all(
            isinstance(label, str) and label for label in labels
        ):
            raise ValueError("expected a JSON object with a list of label strings")
    except ValueError as e:
        raise ValueError(
            f"Could not load the cfg of component '{name}' from {source}: "
            f"the file is corrupted ({type(e).__name__}: {e})"
        ) from e
    return cfg


def load_model(
    model: Model, data: bytes, *, labels: Sequence[str], name: str, source: object
) -> None:
    """Load `data` into `model` (whose output must already have one row per
    tag of `labels`), and check that it has the configured architecture,
    was trained with `labels` and has finite weights."""
    tags = make_tags(labels)
    # Models saved before the labels were stored with them lack the attr.
    model.attrs.pop(LABELS_ATTR, None)
    try:
        check_architecture(model, srsly.msgpack_loads(data))
        model.from_bytes(data)
        # An output width still unset before loading is taken from the
        # file as it is: it must match the labels in cfg.
        output = model.maybe_get_ref("output_layer")
        n_out = output.maybe_get_dim("nO") if output is not None else None
        if n_out is not None and n_out != len(tags):
            raise ValueError(
                f"the model has {n_out} output tags, but the {len(labels)} "
                f"labels in cfg make {len(tags)}"
            )
    except Exception as e:
        raise ValueError(
            f"Could not load the model of component '{name}' from "
            f"{source}: the data is corrupted or was saved by a component with "
            f"a different model architecture ({type(e).__name__}: {e})"
        ) from e
    saved = model.attrs.get(LABELS_ATTR)
    if saved is not None and make_tags(srsly.json_loads(saved)) != tags:
        raise ValueError(
            f"Could not load component '{name}' from {source}: its model "
            f"was trained with the labels {srsly.json_loads(saved)}, but its cfg "
            f"lists {list(labels)}. The cfg was edited or comes from "
            f"another model; loading it would relabel the entities."
        )
    for node, param_name, counts in nonfinite_params(model):
        raise ValueError(
            f"Could not load component '{name}' from {source}: "
            f"parameter '{param_name}' of layer '{node.name}' has {counts[0]} "
            f"NaN and {counts[1]} inf values. The model was saved after "
            f"training diverged, or the file is corrupted."
        )


def check_architecture(model: Model, msg: Dict) -> None:
    """Raise if the serialized model `msg` has another architecture than `model`."""
    nodes = list(model.walk())
    if not isinstance(msg, dict) or len(msg.get("nodes", ())) != len(nodes):
        return  # thinc's `from_dict` raises its own error
    for node, attrs, params in zip(nodes, msg["attrs"], msg["params"]):
        extra = sorted(set(params) - set(node.param_names))
        if extra:
            raise ValueError(
                f"the saved layer '{node.name}' has parameters {extra} that the "
                f"configured one lacks"
            )
        for key in ARCH_ATTRS:
            if key in node.attrs and key in attrs:
                saved = srsly.msgpack_loads(attrs[key])
                if saved != node.attrs[key]:
                    raise ValueError(
                        f"the saved layer '{node.name}' has {key}={saved!r}, the "
                        f"configured one {key}={node.attrs[key]!r}"
                    )


def nonfinite_params(model: Model) -> List[Tuple[Model, str, Tuple[int, int]]]:
    """(layer, parameter name, (n_nan, n_inf)) of every parameter of `model`
    that isn't all finite."""
    found = []
    for node in model.walk():
        for param_name in node.param_names:
            if node.has_param(param_name):
                counts = nonfinite_counts(model.ops.xp, node.get_param(param_name))
                if counts is not None:
                    found.append((node, param_name, counts))
    return found


def nonfinite_counts(xp, array) -> Optional[Tuple[int, int]]:
    """None if `array` is all finite, else its numbers of NaN and inf values."""
    if bool(xp.isfinite(array).all()):
        return None
    return int(xp.isnan(array).sum()), int(xp.isinf(array).sum())
