"""A sixth method in one room: bicubic upsampling plus a learned residual whose weight is a knob (``strength``).

It exists to show that a new method needs its own folder and nothing else: its arch, model and checkpoint format
register from here (``ADAPTSR_METHODS=toy_method`` with this folder's parent on ``PYTHONPATH``, or an
``adaptsr.methods`` entry point of an installed package), and ``adaptsr.load``, ``adaptsr-infer`` (with its
``--strength`` flag), ``adaptsr-bench`` and the option checks work on it unchanged (``tests/test_toy_method.py``).
"""
from toy_method import formats, toy_arch, toy_model  # noqa: F401  (registrations)
