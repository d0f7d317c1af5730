"""torsion, installed with pip: the torsion binary, in the environment's
scripts directory (a virtualenv's bin/), and this module, which finds it.

    $ pip install torsion-VERSION-py3-none-PLATFORM.whl
    $ torsion web --wsgi app:application      # or: python -m torsion web ...

The process that runs is torsion itself, not a Python shim: signals,
sd_notify and pid files reach it directly. A torsion installed in a
virtualenv runs its workers with that virtualenv's Python, activated or
not.

Inside torsion's workers, `import torsion` gives the application the
worker's own module instead (timers, the control channel, torsion.amp),
whatever is installed."""

import os
import sys
import sysconfig

__all__ = ["find_torsion_bin"]


def find_torsion_bin():
    """Returns the path of the torsion binary this package installed;
    raises FileNotFoundError if there is none."""
    name = "torsion" + (sysconfig.get_config_var("EXE") or "")
    candidates = [sysconfig.get_path("scripts")]
    user_scheme = {"posix": "posix_user", "nt": "nt_user"}.get(os.name)
    if sys.platform == "darwin" and sys._framework:  # pragma: no cover (macOS framework builds)
        user_scheme = "osx_framework_user"
    if user_scheme in sysconfig.get_scheme_names():
        candidates.append(sysconfig.get_path("scripts", scheme=user_scheme))
    # pip install --target DIR: DIR/bin, beside this package.
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin"))
    for directory in candidates:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("the torsion binary is not in %s" % ", ".join(candidates))
