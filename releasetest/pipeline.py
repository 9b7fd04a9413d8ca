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

from releasetest.errors import ReleaseTestError

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
