"""Entry script of the frozen app (PyInstaller): the same `flowlink` command as the source one.

multiprocessing starts its helpers (the forkserver that workers come from, the
resource tracker) by running ``sys.executable -c "from multiprocessing... import
main; main(...)"``. In a bundle sys.executable is this program, so
``freeze_support()`` must run first: PyInstaller's version of it recognises those
command lines, runs the helper and exits, before argparse would reject ``-c``.
Nothing heavy is imported before it; the CLI keeps its own imports lazy.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from flowlink.cli import main

    sys.exit(main())
