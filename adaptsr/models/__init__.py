"""BasicSR's package name for the models: importing it registers every method's models (and the rest of
:mod:`adaptsr.methods`) in BasicSR's registries, as ``import adaptsr.models`` did before each method had a room.
"""
import adaptsr.methods  # noqa: F401  (registrations)
