"""How worker processes are started: from a forkserver that has flow_api pre-imported.

multiprocessing normally re-imports the parent's main module in every child
(``init_main_from_name``/``init_main_from_path``). For us that would be pytest,
the GUI or a user's script: slow at best, and an unguarded script would run
again. Workers need only what the forkserver preloaded, so the forkserver
process class here drops those two entries. Where there is no forkserver
(Windows, macOS frozen apps), plain spawn is used.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from typing import Any

PRELOAD = ["flow_api", "flowlink.engine.worker", "flowlink.engine.spawning"]

if "forkserver" in multiprocessing.get_all_start_methods():
    from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
    from multiprocessing.context import ForkServerProcess, set_spawning_popen

    class NoMainPopen(popen_forkserver.Popen):
        def _launch(self, process_obj: Any) -> None:
            prep_data = spawn.get_preparation_data(process_obj._name)
            prep_data.pop("init_main_from_name", None)
            prep_data.pop("init_main_from_path", None)
            buf = io.BytesIO()
            set_spawning_popen(self)
            try:
                reduction.dump(prep_data, buf)
                reduction.dump(process_obj, buf)
            finally:
                set_spawning_popen(None)
            self.sentinel, w = forkserver.connect_to_new_process(self._fds)
            parent_w = os.dup(w)
            self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    class WorkerProcess(ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's name
            return NoMainPopen(process_obj)


def worker_context() -> tuple[multiprocessing.context.BaseContext, type]:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx, WorkerProcess
    ctx = multiprocessing.get_context("spawn")
    return ctx, ctx.Process
