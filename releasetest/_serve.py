"""Start azmlinfsrv exactly as its own command does, but listening on 127.0.0.1 only.

``azmlinfsrv`` hard-codes ``0.0.0.0``; a DEV TEST endpoint on a CI box must not be reachable
from the network. This runs the same startup steps of ``azureml_inference_server_http.amlserver``
in the same order (argument parsing, logging config, environment, gunicorn with the server's own
WSGI app) and only passes a loopback host to its gunicorn launcher.
"""

from __future__ import annotations

import os

from azureml_inference_server_http import amlserver, amlserver_linux
from azureml_inference_server_http.constants import ENV_PORT, ENV_WORKER_COUNT, PACKAGE_ROOT
from azureml_inference_server_http.log_config import load_logging_config

HOST = "127.0.0.1"


def _quiet_gunicorn_extras() -> None:
    """gunicorn 24+ opens a control socket shared by every server of the user; a test endpoint
    must not touch anything outside its own process group, so turn it off where it exists."""
    import gunicorn.config

    names = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
    if "control_socket_disable" in names:
        os.environ["GUNICORN_CMD_ARGS"] = (os.environ.get("GUNICORN_CMD_ARGS", "") + " --no-control-socket").strip()


def main() -> None:
    _quiet_gunicorn_extras()
    args = amlserver.parse_arguments()
    load_logging_config(PACKAGE_ROOT)
    amlserver.merge_configuration(args)
    amlserver.validate_environment_variables()
    amlserver.set_path_variable()
    amlserver.print_server_info()
    amlserver.print_server_settings()
    amlserver_linux.run(HOST, int(os.environ[ENV_PORT]), int(os.environ[ENV_WORKER_COUNT]))


if __name__ == "__main__":
    main()
