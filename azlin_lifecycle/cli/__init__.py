"""The ``azlin-lifecycle`` / ``azlin lifecycle`` command line (click).

Each command group lives in its own module; :mod:`.main` assembles them and turns
every :class:`~azlin_lifecycle.errors.LifecycleError` into one line and exit 1.
"""
