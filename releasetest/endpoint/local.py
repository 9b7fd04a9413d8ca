"""Local DEV TEST endpoint: the release's entry script under the real Azure ML inference server.

The model directory is laid out the way Azure ML mounts models: v1, registered models (one model:
``$AZUREML_MODEL_DIR/<file>``; several: ``$AZUREML_MODEL_DIR/<name>/<version>/<file>``); v2, the
deployment's one model (a file model: ``$AZUREML_MODEL_DIR/<file>``; a folder model keeps its folder:
``$AZUREML_MODEL_DIR/<folder>/...``). The copies' sha256 is checked again after copying, so the
server loads exactly the bytes the manifest pins or the release id binds. The server runs in its
own process group; teardown signals the whole group and returns once every process of it has
exited, so gunicorn workers cannot outlive it. It
runs in the sandbox of :mod:`releasetest.endpoint.sandbox` (an allow-listed environment; under
bwrap or unshare a PID namespace that takes every process the release starts down with it).
A gate that is killed outright (SIGKILL, the OOM killer) gets no teardown: the server dies with
it through its lifeline (:mod:`releasetest.lifeline`), and the work folder, which records its
owner's pid, is removed by the next run (:func:`sweep_orphans`).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from releasetest import lifeline
from releasetest.azureml.v2 import DeploymentV2
from releasetest.endpoint.base import Endpoint
from releasetest.endpoint.client import wait_ready
from releasetest.endpoint.formats import wire_spec
from releasetest.endpoint.handle import EndpointHandle
from releasetest.endpoint.process import catches, depths_below, group_pids, process_alive, wait_group_gone
from releasetest.endpoint.sandbox import Isolation, probe, sandbox_env, signal_targets, wrap
from releasetest.errors import DeployError, EndpointError, WrongAnswer
from releasetest.files import read_tail, sha256_file
from releasetest.release.manifest import Release, Stage
from releasetest.settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, DEFAULT_READY_TIMEOUT

#: Seconds the gunicorn workers get to finish after SIGTERM before the group is killed.
STOP_GRACE_S = 10.0
#: Work folders are ``<temp dir>/releasetest-*``; this file in each holds the owning gate's pid.
WORKDIR_PREFIX = "releasetest-"
OWNER_FILE = "owner.pid"
#: In the work folder: the server's admission slots, and the gate's own clients' (see _v2_info).
ADMISSION_DIR = "admission"
CLIENT_SLOTS_DIR = "client-slots"


def sweep_orphans(temp_dir: Path | None = None) -> str | None:
    """Remove the work folders of gates that died without teardown (their owner pid is gone).

    Returns one line for the verdict's warnings when something was removed. A folder without
    an owner file is left alone: it may be one being created right now.
    """
    root = Path(temp_dir or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not process_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"{folder.name} (pid {owner})")
    if not removed:
        return None
    return f"removed {len(removed)} work folder(s) left by killed runs in {root}: {', '.join(removed)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Connection in use|Address already in use"), "port {port} is already taken on 127.0.0.1"),
    (re.compile(r"(ModuleNotFoundError|ImportError): (.+)"), "entry script import failed: {0}: {1}"),
    (re.compile(r"Encountered Exception.*?(?:\n.*)*?\n(\w+(?:Error|Exception)): (.+)"),
     "init() raised {0}: {1}"),
]


def cause_from_log(log: str, port: int) -> str | None:
    """The most specific reason the log gives for a failed start, in one line."""
    for pattern, template in _CAUSES:
        matches = list(pattern.finditer(log))
        if matches:
            return template.format(*matches[-1].groups(), port=port)
    errors = re.findall(r"^(\w+(?:Error|Exception)): (.+)$", log, flags=re.M)
    if errors:
        name, msg = errors[-1]
        return f"{name}: {msg}"
    return None


def _await_workers(launched: subprocess.Popen[bytes], server_depth: int, deadline: float) -> None:
    """Until the gunicorn workers in the launched process's group (the processes below the
    server's master, which is ``server_depth`` generations below it) have finished serving (they
    answer their last requests, leave their loop and drop their SIGTERM handler as the
    interpreter shuts down) or everything has exited, at most until ``deadline``.

    What a worker does after that (joining telemetry threads, flushing exporters: seconds on a
    busy machine) serves no request, and the caller's SIGKILL ends it."""
    def workers_left() -> bool:
        depths = depths_below(launched.pid, group_pids(launched.pid))
        return any(depth > server_depth and catches(pid, signal.SIGTERM) for pid, depth in depths.items())

    while time.monotonic() < deadline and workers_left():
        try:
            launched.wait(timeout=0.01)
            return
        except subprocess.TimeoutExpired:
            continue


class LocalEndpoint(Endpoint):
    """Runs ``azmlinfsrv`` (via :mod:`releasetest.endpoint.server.serve`, bound to 127.0.0.1) for one stage."""

    target = "local"

    def __init__(
        self,
        release: Release,
        stage: Stage,
        golden: tuple[list[list[float]], list[Any]],
        log_path: Path,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT,
        port: int = DEFAULT_PORT,
        python: str = sys.executable,
        key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        require_key: bool | None = None,
        detach: bool = False,
        isolation: Isolation | None = None,
        diagnose: Callable[[], str | None] | None = None,
    ):
        self.release = release
        #: Names a release-side cause of a wrong golden answer (``wait_ready``; the factory's).
        self.diagnose = diagnose
        #: ``--release-keep``: the server outlives this process, so it gets no lifeline and owns its
        #: work folder itself (the next run's sweep leaves the folder while the server runs).
        self.detach = detach
        self.stage = stage
        self.golden = golden
        self.log_path = log_path
        dc = stage.deployment
        #: A v2 deployment's readiness probe bounds the wait as Azure's would, when it is tighter.
        self.ready_timeout_s = min(ready_timeout_s, dc.readiness_bound_s) if isinstance(dc, DeploymentV2) \
            else ready_timeout_s
        self.port = port or free_port()
        self.python = python
        # authEnabled (or require_key, for a stand-in of a platform that always has keys): the
        # endpoint refuses requests without this key (a given one, or one per run).
        auth = stage.deployment.auth_enabled if require_key is None else require_key
        self.key = (key or secrets.token_urlsafe(32)) if auth else None
        self.max_body_bytes = max_body_bytes
        #: The sandbox the server runs in: the best this machine allows unless one is given.
        self.isolation = isolation or probe()
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None
        self._handle: EndpointHandle | None = None
        self._pid: int | None = None
        self._model_dir: str | None = None
        self._lifeline: lifeline.Lifeline | None = None
        self._notes: list[str] = []
        #: Launched by :meth:`start`, not yet waited for: the handle to be, and when the launch began.
        self._starting: tuple[EndpointHandle, float] | None = None

    @property
    def handle(self) -> EndpointHandle | None:
        return self._handle

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, lines: int = 40) -> str | None:
        return read_tail(self.log_path, lines)

    def notes(self) -> list[str]:
        return list(self._notes)

    def isolation_line(self) -> str:
        return self.isolation.line()

    def facts(self) -> dict[str, Any]:
        return {"pid": self._pid, "port": self.port, "model_dir": self._model_dir, "log": str(self.log_path)}

    def _layout_v2_model(self, root: Path) -> Path:
        """Copy a v2 deployment's model as v2 mounts it; return what ``AZUREML_MODEL_DIR`` names.

        A file model lies directly under it; a folder model keeps its folder name under it, so a
        ``score.py`` joins the variable with ``<folder>/<file>`` (Azure's own samples do).
        """
        assert self.release.v2 is not None
        model = self.release.v2.model
        art = self.release.artifacts[0]
        model_dir = root / "azureml-models" / art.name / art.version
        base = model.path.parent if model.path is not None else None
        for f in art.files:
            target = model_dir / (f.path.relative_to(base) if base is not None else f.path.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.path, target)
            if sha256_file(target) != f.sha256:
                raise DeployError(f"model {art.name} version {art.version}: {f.path.name} changed while being "
                                  "copied for deployment (sha256 no longer matches what was read)")
        return model_dir

    def _layout_models(self, root: Path) -> Path:
        """Copy the artifacts as Azure ML v1 mounts them; return what ``AZUREML_MODEL_DIR`` names.

        One registered model: its own ``azureml-models/<name>/<version>`` folder, so ``score.py``
        joins the variable with the file name. Several: ``azureml-models``, with
        ``<name>/<version>/`` inside for each.
        """
        if self.release.v2 is not None:
            return self._layout_v2_model(root)
        model_dir = root / "azureml-models"
        for art in self.release.artifacts:
            dest = model_dir / art.name / art.version
            dest.mkdir(parents=True, exist_ok=True)
            for f in art.files:
                target = dest / f.path.name
                shutil.copyfile(f.path, target)
                if sha256_file(target) != f.sha256:
                    raise DeployError(
                        f"artifact {art.name} version {art.version}: {f.path.name} changed while being copied "
                        "for deployment (sha256 no longer matches the manifest)")
        if len(self.release.artifacts) == 1:
            only = self.release.artifacts[0]
            return model_dir / only.name / only.version
        return model_dir

    def _env(self, model_dir: Path, home: Path) -> dict[str, str]:
        """The server's environment: never the gate's (see :func:`sandbox_env`)."""
        dc = self.stage.deployment
        server = {
            "AZUREML_MODEL_DIR": str(model_dir),
            "AML_APP_ROOT": str(self._app_root),
            "SCORING_TIMEOUT_MS": str(dc.scoring_timeout_ms),
            # gunicorn kills a worker silent for this long; keep it above the scoring timeout.
            "WORKER_TIMEOUT": str(max(30, dc.scoring_timeout_ms // 1000 + 30)),
            "SERVICE_NAME": f"{self.release.name}-{self.stage.name}",
            "SERVICE_VERSION": self.release.short_id,
            "PYTHONUNBUFFERED": "1",
            "RELEASETEST_MAX_BODY_BYTES": str(self.max_body_bytes),
        }
        if self.python != sys.executable:
            # An isolated venv has the release's pins but not releasetest: its launcher needs only
            # the server, so putting releasetest's folder on the path is enough.
            from releasetest.release.environment import source_root

            server["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root(), os.environ.get("PYTHONPATH")]))
        if self.key:
            server["RELEASETEST_SERVER_KEY"] = self.key
        if isinstance(dc, DeploymentV2):
            server["RELEASETEST_ADMIT"] = str(dc.admits_per_instance)
            server["RELEASETEST_ADMIT_DIR"] = str(home / ADMISSION_DIR)
        declared = ({str(k): str(v) for k, v in dc.environment_variables.items()} if isinstance(dc, DeploymentV2)
                    else {str(k): str(v) for k, v in (dc.raw.get("environmentVariables") or {}).items()})
        return sandbox_env(server, declared, home)

    @property
    def _app_root(self) -> Path:
        """The code folder (v2 ``code_configuration.code``), else the entry script's folder."""
        v2 = self.release.v2
        return v2.code_dir if v2 is not None and v2.code_dir is not None else self.release.inference.entry_script.parent

    def start(self) -> None:
        """Lay out the models and launch the server; :meth:`deploy` waits for it."""
        if self._starting is not None or self._handle is not None:
            return
        dc = self.stage.deployment
        swept = sweep_orphans()
        if swept:
            self._notes.append(swept)
        if self.isolation.kind != "bwrap":
            self._notes.append(self.isolation.line())
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        self._model_dir = str(self.workdir)
        try:
            (self.workdir / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
            model_dir = self._layout_models(self.workdir)
        except BaseException:
            self.teardown()
            raise
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        cmd = [
            self.python, "-m", "releasetest.endpoint.server.serve",
            "--entry_script", str(self.release.inference.entry_script),
            "--model_dir", str(model_dir),
            "--port", str(self.port),
            "--worker_count", str(dc.worker_count),
        ]
        code_dir = self._app_root
        script_dir = self.release.inference.entry_script.parent
        cmd = wrap(self.isolation, cmd, python=self.python, workdir=self.workdir,
                   code_dirs=list(dict.fromkeys([code_dir, script_dir])), cwd=code_dir, detach=self.detach)
        started = time.monotonic()
        popen: dict[str, Any] = {"env": self._env(model_dir, self.workdir), "cwd": str(code_dir),
                                 "stdout": self._log, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL,
                                 "start_new_session": True}
        if not self.detach:
            self._lifeline = lifeline.Lifeline()
            popen = self._lifeline.popen_kwargs(**popen)
            if self.isolation.kind != "none":
                # In a PID namespace the server's parent is the sandbox's init, never the gate.
                popen["env"].pop(lifeline.ENV_PARENT, None)
        try:
            self.proc = subprocess.Popen(cmd, **popen)
        finally:
            if self._lifeline is not None:
                self._lifeline.started()
        self._pid = self.proc.pid
        if self.detach:
            (self.workdir / OWNER_FILE).write_text(f"{self.proc.pid}\n", encoding="ascii")
        base = f"http://127.0.0.1:{self.port}"
        handle = EndpointHandle(
            target=self.target,
            scoring_uri=f"{base}/score",
            liveness_uri=f"{base}/",
            swagger_uri=f"{base}/swagger.json",
            key=self.key,
            log_path=str(self.log_path),
            info={"pid": self.proc.pid, "port": self.port, "workers": dc.worker_count,
                  "scoring_timeout_ms": dc.scoring_timeout_ms, "server": "azmlinfsrv",
                  "deployment_config": str(dc.path), "model_dir": str(model_dir),
                  "max_body_bytes": self.max_body_bytes, "isolation": self.isolation.line(), **self._v2_info()},
        )
        self._starting = (handle, started)

    def _v2_info(self) -> dict[str, Any]:
        """What a v2 deployment's settings became here (docs/azureml.md, "v2 deployment settings")."""
        dc = self.stage.deployment
        if not isinstance(dc, DeploymentV2):
            return {}
        assert self.workdir is not None
        # admits: what this one instance takes at once before it answers 429; client_slots: where the
        # gate's own scoring clients count theirs, so they never send more (ScoringClient).
        return {"instance_type": dc.instance_type, "instance_count": dc.instance_count, "cores": dc.cpu,
                "max_concurrent_requests_per_instance": dc.max_concurrent_requests_per_container,
                "admits": dc.admits_per_instance, "client_slots": str(self.workdir / CLIENT_SLOTS_DIR),
                "readiness_bound_s": dc.readiness_bound_s, "ready_timeout_s": self.ready_timeout_s}

    def _v2_hint(self, cause: str) -> str:
        """Names the v1 habit behind a FileNotFoundError under a v2 folder model."""
        v2 = self.release.v2
        if v2 is None or not v2.model.is_folder or "FileNotFoundError" not in cause:
            return cause
        assert v2.model.path is not None
        return (f"{cause}; under a v2 folder model the file is at AZUREML_MODEL_DIR/{v2.model.path.name}/... "
                f"(the folder keeps its name), so join AZUREML_MODEL_DIR with '{v2.model.path.name}/<file>'")

    def deploy(self) -> EndpointHandle:
        if self._handle is not None:
            return self._handle
        self.start()
        assert self._starting is not None and self.proc is not None and self._log is not None
        handle, started = self._starting
        self._starting = None

        def still_starting(wait_s: float) -> bool:
            assert self.proc is not None
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                return True
            return False

        try:
            wire = wait_ready(handle, *self.golden, deadline_s=self.ready_timeout_s, still_starting=still_starting,
                              spec=wire_spec(self.release), started=started, diagnose=self.diagnose).wire
        except WrongAnswer as exc:
            self._log.flush()
            tail = self.log_tail()
            self.teardown()
            raise DeployError(str(exc), tail, answered=True) from None
        except EndpointError as exc:
            self._log.flush()
            tail = self.log_tail()
            cause = str(exc)
            if self.proc.poll() is not None:
                found = cause_from_log(tail or "", self.port)
                cause = self._v2_hint(found or cause)
                cause = f"server exited with code {self.proc.returncode} while starting: {cause}"
            self.teardown()
            raise DeployError(f"local endpoint for stage {self.stage.name} did not become ready: {cause}",
                              tail) from None
        handle.info["ready_s"] = round(time.monotonic() - started, 2)
        handle.info["wire"] = wire.as_dict()
        self._handle = handle
        return handle

    def teardown(self) -> None:
        """Stop the whole process group (master and workers) and remove the model copies."""
        proc, self.proc = self.proc, None
        self._starting = None
        if proc is not None and proc.poll() is None:
            for pid in signal_targets(group_pids(proc.pid), proc.pid, self.isolation):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            _await_workers(proc, self.isolation.server_depth, time.monotonic() + STOP_GRACE_S)
        if proc is not None:
            # The master once its workers are gone (it would only poll, every 0.1 s, to notice
            # and exit), a worker past the grace, or workers of a master that died on its own.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=STOP_GRACE_S)
            # The launcher's exit is not the group's: under bwrap its namespace's init and the
            # workers are still exiting then.
            wait_group_gone(proc.pid, STOP_GRACE_S)
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
