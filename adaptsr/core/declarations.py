"""What a model class declares about itself, read along its class hierarchy: its options, knobs and side files.

A model declares, as class attributes, the ``val`` options it reads (``val_options``, with defaults), their ranges
(``val_ranges``), its ``train`` section, phase keys and hooks, its knob flags and summary statistics, and the files
it reads beside its weights (``side_files``). The API, the commands, the bench and the option checks read these
declarations; none of them knows a method by name.
"""
from basicsr.utils.registry import MODEL_REGISTRY

#: ``val`` keys that are bookkeeping of a test run, not knobs of a model
NOT_KNOBS = frozenset({'val_freq', 'save_img', 'suffix', 'metrics', 'pbar', 'budget_sweep', 'cost', 'crop_mode'})


def declared(model_cls, attr):
    """``attr`` (a dict or a set) of ``model_cls`` merged along its class hierarchy, base classes first."""
    merged = None
    for klass in reversed(model_cls.__mro__):
        value = klass.__dict__.get(attr)
        if value is None:
            continue
        if isinstance(value, dict):
            merged = dict(merged or {}, **value)
        else:
            merged = set(merged or ()) | set(value)
    return merged if merged is not None else {}


def declared_knobs(model_cls):
    """The knobs (``val`` options that change what the model computes) of ``model_cls``, with their defaults: e.g.
    PCSR ``k``, ``adaptive``, ``refine``; APE ``exit_threshold``; every model the tile options (``compile`` only
    where the class is ``compilable``)."""
    skip = NOT_KNOBS if getattr(model_cls, 'compilable', True) else set(NOT_KNOBS) | {'compile'}
    return {k: v for k, v in declared(model_cls, 'val_options').items() if k not in skip}


def adaptsr_models():
    """``{name: class}`` of the registered models that declare their options (adaptsr's)."""
    return {name: cls for name, cls in MODEL_REGISTRY._obj_map.items() if hasattr(cls, 'val_options')}


def side_file_keys():
    """``{path key: [model names]}`` of every side file a registered model declares (``side_files``)."""
    keys = {}
    for name, cls in sorted(adaptsr_models().items()):
        for key in declared(cls, 'side_files'):
            keys.setdefault(key, []).append(name)
    return keys


def side_file_specs():
    """``{path key: spec}`` of the side files every registered model declares (``side_files``; the first
    declaration of a key gives its flag and help)."""
    specs = {}
    for cls in adaptsr_models().values():
        for key, spec in declared(cls, 'side_files').items():
            specs.setdefault(key, spec)
    return specs
