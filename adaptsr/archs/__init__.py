"""BasicSR's package name for the archs: importing it registers every method's archs (and the rest of
:mod:`adaptsr.methods`) in BasicSR's registries, as ``import adaptsr.archs`` did before each method had a room.
"""
import adaptsr.methods  # noqa: F401  (registrations)
