"""APE's declarations to the console commands (plain data; read by path for ``--help``, see
:mod:`adaptsr.core.model_flags`)."""

#: ``adaptsr-infer`` / the bench's model flags (``APEModel.knob_flags``)
KNOB_FLAGS = {'exit_threshold': {'flag': '--exit-threshold', 'val': 'exit_threshold', 'type': float,
                                 'help': 'APE: a tile leaves at the first exit whose IC reaches this (1 = no early '
                                         'exit)'}}
