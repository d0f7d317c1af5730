"""Runs the worker: python DIR/torsion_worker/__main__.py (torsion's way)
or python -m torsion_worker."""
import os
import sys

if not __package__:
    # Run as a file: the package's parent, not the package, is what must
    # be importable (its modules are not top-level ones: an application's
    # wsgi.py must not meet ours).
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from torsion_worker.main import main
else:
    from .main import main

main()
