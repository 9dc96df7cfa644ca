"""SMSR's declarations to the console commands (plain data; read by path for ``--help``, see
:mod:`adaptsr.core.model_flags`)."""

#: ``adaptsr-convert --method`` names and their help (:mod:`adaptsr.methods.smsr.formats`)
CONVERTERS = {'smsr': 'official SMSR state_dict -> SMSRNet'}
