"""The helpers of each notebook, one module per lesson, named after its notebook.

Each module imports only the core (`trainlab.*` outside this package), never
another lesson; the core never imports a lesson. `make test` holds both rules
(import-linter contracts in pyproject.toml).

>>> from trainlab.lessons import sanity        # notebook 00
>>> from trainlab.lessons import doctor        # notebook 14   # doctest: +SKIP
"""
