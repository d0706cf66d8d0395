"""Experiments, demos and measurements around :mod:`adamod_optax` (not part of the package).

Everything here imports the library one way only and runs from a clone of the repository with
``python -m benchmarks.<name>``: the main demo (``benchmarks.demo``), the convergence tasks
(``benchmarks.convergence``) behind the notebooks and the results page, the dataset loaders, the
character Transformer, and the speed, memory and accuracy measurements.
"""
