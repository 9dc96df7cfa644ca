"""The console commands installed with adaptsr (``pip install -e .``): ``adaptsr-train``, ``adaptsr-test``,
``adaptsr-bench``, ``adaptsr-convert``, ``adaptsr-export`` and ``adaptsr-infer`` (:mod:`adaptsr.cli.infer`).

Each works from any working directory: options files, checkpoints and outputs are read and written relative to it
(``experiments/`` and ``results/`` as BasicSR's ``train.py``/``test.py`` put them beside themselves), and the data
locations default to ``ADAPTSR_DATA``/``ADAPTSR_BENCHMARK``/``ADAPTSR_WEIGHTS`` under it (README, "Data").
The repository's ``train.py``, ``test.py`` and ``scripts/*.py`` are thin wrappers of these.
"""
