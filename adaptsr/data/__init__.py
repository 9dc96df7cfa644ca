"""BasicSR's package name for the datasets: importing it registers every method's datasets (and the rest of
:mod:`adaptsr.methods`) in BasicSR's registries, as ``import adaptsr.data`` did before each method had a room.
"""
import adaptsr.methods  # noqa: F401  (registrations)
