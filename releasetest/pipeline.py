"""What a CI run of the release pipeline tells releasetest: its trigger and its Azure ML workspace.

The templates under ``ci/`` call this through ``releasetest trigger`` and ``releasetest
workspace-config``, so the mapping from each CI's event variables to the verdict's ``trigger``
field has one owner and a test, instead of a shell ``case`` per template. Payload fields come
from outside (an Event Grid event, a webhook, an API caller): a value that could break the
``KEY=VALUE`` line it lands in is refused, not quoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from releasetest.errors import ReleaseTestError

#: ``repository_dispatch`` event types the GitHub template listens to, and the payload each carries.
DISPATCH_EVENTS = {"model-registered": ("model", "version"), "image-pushed": ("image",)}
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

_SAFE = re.compile(r"[A-Za-z0-9._:/@+=* \-]*")


def _safe(name: str, value: str) -> str:
    if not _SAFE.fullmatch(value):
        raise ReleaseTestError(f"trigger field {name}={value!r} has characters outside letters, digits and "
                               "._:/@+=*- and spaces (fix the event payload that set it)")
    return value


def _pairs(fields: Mapping[str, str]) -> str:
    return ",".join(f"{k}={_safe(k, v)}" for k, v in fields.items() if v)


def _github(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    event = env.get("GITHUB_EVENT_NAME", "")
    artifact = ""
    fields = {"commit": env.get("GITHUB_SHA", ""), "branch": env.get("GITHUB_REF_NAME", "")}
    if event == "push":
        kind = "git"
    elif event == "repository_dispatch" and env.get("EVENT_ACTION") == "model-registered":
        kind = "artifact"
        fields |= {"model": env.get("EVENT_MODEL", ""), "version": env.get("EVENT_VERSION", "")}
        artifact = f"{fields['model']}={fields['version']}"
    elif event == "repository_dispatch" and env.get("EVENT_ACTION") == "image-pushed":
        kind, fields["image"] = "image", env.get("EVENT_IMAGE", "")
    elif event == "schedule":
        kind, fields["cron"] = "schedule", env.get("SCHEDULE_CRON", "")
    elif event == "workflow_dispatch":
        kind, artifact = "api", env.get("INPUT_ARTIFACT", "").strip()
        fields["artifact"] = artifact.replace(",", "+")
    else:
        raise ReleaseTestError(f"GITHUB_EVENT_NAME={event!r} (action {env.get('EVENT_ACTION')!r}) is not a trigger "
                               "of the release pipeline: push, repository_dispatch model-registered or "
                               "image-pushed, schedule, workflow_dispatch")
    return {"kind": kind, **fields, "run_url": env.get("RUN_URL", "")}, artifact


def _azure(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    reason = env.get("BUILD_REASON", "")
    artifact = ""
    fields = {"commit": env.get("BUILD_SOURCEVERSION", ""), "branch": env.get("BUILD_SOURCEBRANCHNAME", "")}
    model, version = env.get("EVENT_MODEL", "").strip(), env.get("EVENT_VERSION", "").strip()
    if reason in ("IndividualCI", "BatchedCI"):
        kind = "git"
    elif reason == "ResourceTrigger":
        kind, fields["image"] = "image", env.get("EVENT_IMAGE", "")
    elif reason == "Schedule":
        kind = "schedule"
    elif reason == "Manual" and model and version:  # Event Grid ModelRegistered -> Runs REST API
        kind, artifact = "artifact", f"{model}={version}"
        fields |= {"model": model, "version": version}
    elif reason == "Manual":
        kind, artifact = "api", env.get("INPUT_ARTIFACT", "").strip()
        fields["artifact"] = artifact.replace(",", "+")
    else:
        raise ReleaseTestError(f"BUILD_REASON={reason!r} is not a trigger of the release pipeline: IndividualCI, "
                               "BatchedCI, ResourceTrigger, Schedule or Manual (REST API)")
    return {"kind": kind, **fields, "run_url": env.get("RUN_URL", "")}, artifact


def describe_trigger(ci: str, env: Mapping[str, str]) -> dict[str, str]:
    """``RELEASETEST_TRIGGER`` (and ``RELEASETEST_ARTIFACT`` when the trigger names versions) for ``ci``."""
    fields, artifact = _github(env) if ci == "github" else _azure(env)
    out = {"RELEASETEST_TRIGGER": _pairs(fields)}
    if artifact:
        for part in artifact.split(","):
            _safe("artifact", part.replace("=", ""))
        out["RELEASETEST_ARTIFACT"] = artifact
    return out


def workspace_config(env: Mapping[str, str]) -> dict[str, str]:
    """The config.json fields from the pipeline's variables; a missing one is named with its fix."""
    names = {"subscription_id": "AZURE_SUBSCRIPTION_ID", "resource_group": "AZUREML_RESOURCE_GROUP",
             "workspace_name": "AZUREML_WORKSPACE"}
    missing = [var for var in names.values() if not env.get(var)]
    if missing:
        raise ReleaseTestError(f"{', '.join(missing)} not set: give the production job the workspace's subscription, "
                               "resource group and name (see docs/pipeline.md, service connection)")
    return {key: env[var] for key, var in names.items()}


def dispatch_payload(event: str, fields: Mapping[str, str | None]) -> dict[str, Any]:
    """The ``repository_dispatch`` body for ``event``; each field is checked by the same rule the
    receiving run's :func:`describe_trigger` applies, so a sent event is never refused there."""
    if event not in DISPATCH_EVENTS:
        raise ReleaseTestError(f"--event {event}: not an event the release pipeline listens to "
                               f"({', '.join(DISPATCH_EVENTS)})")
    missing = [f"--{name}" for name in DISPATCH_EVENTS[event] if not (fields.get(name) or "").strip()]
    if missing:
        raise ReleaseTestError(f"--event {event} needs {' and '.join(missing)}")
    payload = {name: _safe(name, str(fields[name]).strip()) for name in DISPATCH_EVENTS[event]}
    return {"event_type": event, "client_payload": payload}


def send_dispatch(repo: str, body: Mapping[str, Any], env: Mapping[str, str], timeout_s: float = 30.0) -> str:
    """POST ``body`` to GitHub's ``/repos/{repo}/dispatches`` with ``$GITHUB_TOKEN``; ``$GITHUB_API_URL``
    (GitHub's own variable, for GitHub Enterprise Server) overrides https://api.github.com. Returns
    the URL posted to; any answer but 204 is an error that quotes GitHub's message."""
    import requests

    if not _REPO.fullmatch(repo):
        raise ReleaseTestError(f"--repo {repo!r}: give the repository as OWNER/NAME")
    token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise ReleaseTestError("GITHUB_TOKEN is not set: give a token that may write the repository's contents "
                               "(fine-grained: Contents read and write; classic: repo)")
    url = f"{env.get('GITHUB_API_URL', '').rstrip('/') or 'https://api.github.com'}/repos/{repo}/dispatches"
    try:
        resp = requests.post(url, json=dict(body), timeout=timeout_s,
                             headers={"Accept": "application/vnd.github+json", "Authorization": f"Bearer {token}",
                                      "X-GitHub-Api-Version": "2022-11-28"})
    except requests.RequestException as exc:
        raise ReleaseTestError(f"{url}: {exc}") from None
    if resp.status_code != 204:
        try:
            message = resp.json().get("message", "")
        except ValueError:
            message = resp.text[:200]
        raise ReleaseTestError(f"{url}: GitHub answered {resp.status_code} {message}".rstrip()
                               + (" (check GITHUB_TOKEN and --repo)" if resp.status_code in (401, 403, 404) else ""))
    return url
