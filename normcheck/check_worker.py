"""The worker process of an isolated check (``python -m normcheck.check_worker``; see
:mod:`normcheck.isolation`): reads its request from stdin, runs :func:`normcheck.checker.run_checks`
(or one case alone, ``mode`` "case"), and streams what it does to its supervisor."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time

from normcheck import isolation as iso

PROTOCOL = pickle.HIGHEST_PROTOCOL


def _exit_with_parent(parent: int) -> None:
    """End this process when its supervisor is gone (killed by a signal it could not handle)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="normcheck-parent-watch").start()


def main() -> None:
    request = pickle.loads(sys.stdin.buffer.read())
    sys.path[:] = request["path"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor ends this process itself
    _exit_with_parent(request["parent"])
    from multiprocessing.connection import Connection

    conn = Connection(request["fd"], readable=False)

    def send(kind: bytes, obj) -> None:
        conn.send_bytes(kind + pickle.dumps(obj, protocol=PROTOCOL))

    from normcheck import checker
    from normcheck.audit.driver import watch_cases
    from normcheck.target.guard import CallClock, watch_calls

    watch_calls(CallClock(request["clock"]))
    slot = iso.CaseSlot(request["case_slot"]).open()
    watch_cases(slot.write)

    class Events(checker.Events):
        def plan(self, info):
            send(iso.PLAN, info)

        def stage(self, dtype, what):
            slot.clear()
            send(iso.STAGE, (dtype, what))

    import numpy as np

    try:
        with np.errstate(all="ignore"):
            if request["mode"] == "case":
                send(iso.STAGE, (request["dtype"], request["property"]))
                checker.rerun_case(
                    request["target"],
                    request["norm"],
                    request["dtype"],
                    request["property"],
                    request["case"],
                    **request["options"],
                )
                send(iso.RESULT, None)
            else:
                report = checker.run_checks(
                    request["target"],
                    request["norm"],
                    progress=lambda r: send(iso.RECORD, r),
                    prior=request["prior"],
                    events=Events(),
                    **request["options"],
                )
                index = {id(r): k for k, r in enumerate(report.records)}
                report.outputs = {index[i]: v for i, v in report.outputs.items() if i in index}
                send(iso.REPORT, report)
    except (checker.TargetError, ValueError) as e:
        import traceback

        cause = "".join(traceback.format_exception(e.__cause__)) if e.__cause__ is not None else ""
        send(iso.RAISE, ("ValueError" if isinstance(e, ValueError) else "TargetError", str(e), cause))
    except Exception:
        import traceback

        send(iso.RAISE, ("RuntimeError", traceback.format_exc(), ""))
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # not waiting for the frameworks' threads


if __name__ == "__main__":
    main()
