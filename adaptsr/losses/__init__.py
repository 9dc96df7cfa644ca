"""BasicSR's package name for the losss: importing it registers every method's losss (and the rest of
:mod:`adaptsr.methods`) in BasicSR's registries, as ``import adaptsr.losses`` did before each method had a room.
"""
import adaptsr.methods  # noqa: F401  (registrations)
