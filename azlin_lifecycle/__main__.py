"""``python -m azlin_lifecycle`` is the ``azlin-lifecycle`` command."""

from .cli.main import main

main()
