"""python -m torsion ARGS: runs the torsion binary with ARGS, in this
process's place."""

import os
import sys

from torsion import find_torsion_bin


def main():
    path = find_torsion_bin()
    os.execv(path, [path] + sys.argv[1:])


if __name__ == "__main__":
    main()
