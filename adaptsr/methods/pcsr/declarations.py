"""PCSR's declarations to the console commands (plain data; read by path for ``--help``, see
:mod:`adaptsr.core.model_flags`)."""

#: ``adaptsr-infer`` / the bench's model flags (``PCSRModel.knob_flags``)
KNOB_FLAGS = {'k': {'flag': '--k', 'val': 'k', 'type': float,
                    'help': 'PCSR: classifier threshold offset (0 = argmax)'},
              'adaptive': {'flag': '--adaptive', 'val': 'adaptive', 'value': True,
                           'help': "PCSR: ADM's per-image threshold instead of --k"},
              'no_refine': {'flag': '--no-refine', 'val': 'refine', 'value': False,
                            'help': 'PCSR: skip the refinement of light pixels next to heavy ones'}}

#: ``adaptsr-convert --method`` names and their help (:mod:`adaptsr.methods.pcsr.formats`)
CONVERTERS = {'pcsr': 'official PCSR wrapper (phase 0/1, CARN, FSRCNN) or a PCSR-family state_dict',
              'carn_m': 'official multi-scale CARN-M (nmhkahn/CARN-pytorch) -> PCSRCARN, bit-exact'}
