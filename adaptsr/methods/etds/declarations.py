"""ETDS's declarations to the console commands (plain data; read by path for ``--help``, see
:mod:`adaptsr.core.model_flags`)."""

#: ``adaptsr-convert --method`` names and their help (:mod:`adaptsr.methods.etds.formats`)
CONVERTERS = {'etds': 'ETDS training form (ours or official ablations), ECBSR or ABPN -> ETDSPlain by ET',
              'ecbsr': 'ECBSR training form -> ECBSRPlain (with --et: on to ETDSPlain)',
              'abpn': 'ABPN -> ETDSPlain by ET'}
