"""Entry script of the frozen app (PyInstaller): the same `flowlink` command as the source one.

multiprocessing starts its helpers (the forkserver that workers come from, the
resource tracker) by running ``sys.executable -c "from multiprocessing... import
main; main(...)"``. In a bundle sys.executable is this program, so
``freeze_support()`` must run first: PyInstaller's version of it recognises those
command lines, runs the helper and exits, before argparse would reject ``-c``.
Nothing heavy is imported before it; the CLI keeps its own imports lazy.
"""

import multiprocessing
import os
import sys


def restore_library_path() -> None:
    """Give child programs the library path this process was started with.

    On Linux the bootloader puts the bundle's folder first in LD_LIBRARY_PATH (keeping
    the old value in LD_LIBRARY_PATH_ORIG). Every process inherits it: a flow that runs
    a system program would load the bundle's Qt, ICU or libpython instead of the
    system's. This process does not need it any more (the dynamic loader read it at
    start, and the bundle's libraries find each other through their RPATH), and copies
    of the bundle started later (forkserver, background engine) set it again.
    """
    if not (getattr(sys, "frozen", False) and sys.platform.startswith("linux")):
        return
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        os.environ["LD_LIBRARY_PATH"] = original
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)


if __name__ == "__main__":
    restore_library_path()
    multiprocessing.freeze_support()

    from flowlink.cli import main

    sys.exit(main())
