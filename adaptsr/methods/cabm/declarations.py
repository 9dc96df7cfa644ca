"""CABM's declarations to the console commands (plain data; read by path for ``--help``, see
:mod:`adaptsr.core.model_flags`)."""

#: ``adaptsr-infer`` / the bench's model flags (``CABMModel.knob_flags``)
KNOB_FLAGS = {'calibration': {'flag': '--calibration', 'val': 'calibration', 'type': float,
                              'help': 'CABM: average-bit ceiling of the edge-to-bit table (100 = the table as built)'}}

#: files read beside the weights (``CABMModel.side_files``)
SIDE_FILES = {'cabm_lut': {'what': 'CABM table', 'flag': '--cabm-lut', 'default': 'cabm_lut.json',
                           'network': {'mode': 'lut'},
                           'help': 'CABM: edge-to-bit table (default: cabm_lut.json beside the checkpoint; without '
                                   'one the trained CADyQ selectors choose the bits)'}}

#: console commands of this room: ``name -> module`` (a module of this folder whose ``main()`` runs it, and which
#: imports torch only after parsing); setup.py points each at :mod:`adaptsr.cli.room_command`
COMMANDS = {'adaptsr-cabm-table': 'table_cli'}
