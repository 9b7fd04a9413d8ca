"""Start the Azure ML inference server's own WSGI app under gunicorn, on 127.0.0.1 only.

``azmlinfsrv`` hard-codes ``0.0.0.0`` and has no authentication. A DEV TEST endpoint on a CI box
must not be reachable from the network, and a stage with ``authEnabled: True`` must refuse
requests without its key, as Azure does. So this runs the same startup steps as
``azureml_inference_server_http.amlserver.run`` (arguments, logging config, environment) and then
gunicorn with the same settings azmlinfsrv passes it, except: an explicit loopback bind, and the
app :mod:`releasetest.endpoint.server.app` (the server's own Flask app behind a key check and a body cap),
and, when the stage has an admission limit (``RELEASETEST_ADMIT``, Azure ML v2), the worker of
:mod:`releasetest.endpoint.server.worker`, so a request beyond the limit is answered (429) while
``run()`` runs.
"""

from __future__ import annotations

import os
import sys

import gunicorn.app.wsgiapp
import gunicorn.config
from azureml_inference_server_http import amlserver
from azureml_inference_server_http.constants import ENV_PORT, ENV_WORKER_COUNT, PACKAGE_ROOT
from azureml_inference_server_http.log_config import load_logging_config

from releasetest import lifeline

HOST = "127.0.0.1"


def gunicorn_argv(port: int, workers: int, timeout_s: str, admit: int | None = None) -> list[str]:
    """gunicorn's arguments; with ``admit``, threads enough that every admitted request and one
    more (the one refused) reach the app even when all land in the same worker."""
    argv = [
        "gunicorn", "-b", f"{HOST}:{port}", "-w", str(workers), "--timeout", timeout_s,
        # As azmlinfsrv: access log to stdout (the endpoint's log file), errors through its logger.
        "--access-logfile", "-", "--error-logfile", "/dev/null",
        "--graceful-timeout", "5",
    ]
    # gunicorn 24+ opens a control socket shared by every server of the user; a test endpoint
    # must not touch anything outside its own process group.
    if "control_socket_disable" in {s.name for s in gunicorn.config.KNOWN_SETTINGS}:
        argv.append("--no-control-socket")
    if admit is not None:
        argv += ["-k", "releasetest.endpoint.server.worker.MainThreadWorker", "--threads", str(admit + 2)]
    return argv + ["releasetest.endpoint.server.app:app"]


def main() -> None:
    lifeline.watch()  # the gate may be SIGKILLed: this server and its workers must not outlive it
    args = amlserver.parse_arguments()
    load_logging_config(PACKAGE_ROOT)
    amlserver.merge_configuration(args)
    amlserver.validate_environment_variables()
    amlserver.set_path_variable()
    amlserver.print_server_info()
    amlserver.print_server_settings()
    sys.argv = gunicorn_argv(int(os.environ[ENV_PORT]), int(os.environ[ENV_WORKER_COUNT]),
                             os.environ.get("WORKER_TIMEOUT", "300"),
                             int(os.environ["RELEASETEST_ADMIT"]) if os.environ.get("RELEASETEST_ADMIT") else None)
    gunicorn.app.wsgiapp.WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


if __name__ == "__main__":
    main()
