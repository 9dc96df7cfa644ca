"""Every error type adaptsr raises for a user's input, in one place. Each message names the file, key or value at
fault; the console commands print it as one line (:mod:`adaptsr.cli.errors`)."""


class OptionError(ValueError):
    """An option that no part of adaptsr or BasicSR reads (a typo), or a value that does not fit."""


class ConversionError(ValueError):
    """A state cannot be converted, or a converted model is not equivalent to its source."""


class WrongScaleError(ConversionError):
    """A recognised checkpoint whose weights are for another scale than the one asked for."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: a folder, an unreadable file, a missing ``param_key``, NaN/Inf weights (the
    message names the file)."""


class LoadError(ValueError):
    """A source that cannot be loaded as asked (the message names the source, the option or the knob)."""


class InferError(ValueError):
    """A bad input image, model flag or model for inference (``adaptsr-infer``, the bench; the message names it)."""


class OutputPlanError(ValueError):
    """A planned output that collides with another, with an input, with an existing file, or cannot be written."""


class DataReadError(RuntimeError):
    """A training or test sample that cannot be read (the dataset, the index and the files or LMDB keys are named)."""


class NonFiniteLossError(FloatingPointError):
    """A training loss or gradient became NaN/Inf (``train.nonfinite: stop``, the default)."""


class DivergedLossError(FloatingPointError):
    """A finite training loss that has left its running median by more than ``train.divergence.factor``."""


#: the types that report a user's input (the console commands end with their one-line message)
USER_ERRORS = (OptionError, ConversionError, CheckpointError, LoadError, InferError, OutputPlanError, DataReadError,
               NonFiniteLossError, DivergedLossError)
