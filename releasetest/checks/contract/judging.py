"""Judging the endpoint's answers: output against the published schema, each probe's answer under
the release's policy (``strict`` or ``azure``), and leaked tracebacks and file paths."""

from __future__ import annotations

import builtins
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jsonschema

from releasetest.checks.contract.findings import DEFECT, FAILURE
from releasetest.checks.contract.probes import Probe
from releasetest.endpoint.formats import Wire
from releasetest.errors import EndpointError


class Judgement(NamedTuple):
    """How an answer breaks the contract: severity, the message, and the kind of wrong answer
    (:attr:`Finding.problem`) when probes share it."""

    severity: str
    message: str
    problem: str = ""


_EXCEPTION_NAMES = sorted(
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException) and name.endswith(("Error", "Exception"))
)


_LEAKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("stack frame", re.compile(r"File \"[^\"]+\", line \d+")),
    ("file path", re.compile(r"(?<![\w.:/])/(?:home|root|tmp|var|usr|opt|srv|app|mnt|etc|azureml-app|structure)"
                             r"(?:/[\w.@+-]+)+")),
    ("file path", re.compile(r"\b[A-Za-z]:\\(?:[\w.@+ -]+\\)+")),
    ("Python source file", re.compile(r"[\w/\\.-]+\.py\b")),
    ("exception text", re.compile(r"\b(?:" + "|".join(_EXCEPTION_NAMES) + r"): ")),
)


def find_leak(text: str) -> str | None:
    """What internal detail a response shows (traceback, frame, path, exception), quoted; None if clean."""
    for what, pattern in _LEAKS:
        match = pattern.search(text)
        if match:
            return f"{what} {match.group(0)[:80]!r}"
    return None


@functools.lru_cache(maxsize=8)
def _validator(schema: str) -> Any:
    """A checked validator per schema (as JSON text): ``jsonschema.validate`` checks the schema
    against its metaschema on every call, which cost more than the request it judges."""
    loaded = json.loads(schema)
    cls = jsonschema.validators.validator_for(loaded)
    cls.check_schema(loaded)
    return cls(loaded)


def _schema_shape(schema: Any) -> str:
    """A published schema in a few words: what a client reading the swagger expects."""
    if not isinstance(schema, Mapping):
        return "anything"
    kind = schema.get("type")
    if kind == "object":
        keys = list(schema.get("properties") or {})
        return f"an object with {', '.join(repr(k) for k in keys)}" if keys else "an object"
    if kind == "array":
        return f"an array of {_schema_shape(schema.get('items')).removeprefix('an ').removeprefix('a ')}s"
    return {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "a boolean"}.get(
        str(kind), f"{kind}")


def _answer_shape(body: Any) -> str:
    if isinstance(body, Mapping):
        return f"an object with {', '.join(repr(k) for k in body)}" if body else "an empty object"
    if isinstance(body, list):
        return "an array"
    return f"a {type(body).__name__} ({json.dumps(body)[:60]})"


def _sample_of(body: Any) -> Any:
    """A small sample of an answer, for the fix: lists cut to their first item."""
    if isinstance(body, Mapping):
        return {k: _sample_of(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_sample_of(v) for v in body[:1]]
    return body


def output_disagreement(body: Any, output_schema: Mapping[str, Any] | None) -> str | None:
    """Why the published output schema does not describe the answer to the published example (what
    the swagger claims, what the endpoint returns, and the fix), or None when it does.

    The answer to the contract's own example is what ``run()`` returns for input it was written
    for, so a mismatch there is the schema's mistake (as in the MLOpsPython template's
    ``@output_schema(NumpyParameterType(...))`` on a ``run()`` returning ``{"result": [...]}``),
    not a wrong answer.
    """
    if output_schema is None:
        return None
    exc = jsonschema.exceptions.best_match(_validator(json.dumps(output_schema, sort_keys=True)).iter_errors(body))
    if exc is None:
        return None
    sample = json.dumps(_sample_of(body))
    return (f"the published output schema (swagger ServiceOutput) claims {_schema_shape(output_schema)}, but the "
            f"endpoint returns {_answer_shape(body)} ({json.dumps(body)[:80]}); fix: declare what run() returns, "
            f"e.g. @output_schema(StandardPythonParameterType({sample[:120]}))")


def output_violation(body: Any, output_schema: Mapping[str, Any] | None, n_rows: int,
                     classes: Sequence[Any], wire: Wire | None = None) -> str | None:
    """Why an answer to ``n_rows`` valid rows breaks the contract (the published output schema, when
    there is one, and the release's answer format), or None when it keeps it."""
    if output_schema is not None:
        exc = jsonschema.exceptions.best_match(_validator(json.dumps(output_schema, sort_keys=True))
                                               .iter_errors(body))
        if exc is not None:
            where = "/".join(map(str, exc.absolute_path)) or "top level"
            return (f"response {json.dumps(body)[:120]} does not match the published output schema: "
                    f"{exc.message} at {where}")
    try:
        preds, probs = (wire or Wire()).decode(body)
    except EndpointError as exc:
        return f"response {json.dumps(body)[:120]} carries no list of predictions: {exc}"
    if len(preds) != n_rows:
        return f"sent {n_rows} rows, got {len(preds)} predictions"
    unknown = sorted({repr(p) for p in preds if p not in classes}) if classes else []
    if unknown:
        return f"labels {', '.join(unknown)} are not among the release's classes {list(classes)}"
    if probs is not None and classes:
        if len(probs) != n_rows:
            return f"sent {n_rows} rows, got {len(probs)} probability rows"
        for i, p in enumerate(probs):
            if len(p) != len(classes) or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in p):
                return f"row {i}: probabilities {p} are not {len(classes)} values in [0, 1]"
    return None


#: The probes that make a raw ``run()`` raise inside itself (not in inference-schema's cast), tried in
#: order to see whether it answers the exception's text with 200.
ERROR_TEXT_PROBES = ("missing-data-key", "too-few-features", "string-value")


def error_text(status: int, text: str) -> str | None:
    """The text a 2xx answer carries instead of predictions: a JSON string that is not itself JSON
    holding a list or mapping (what ``return str(e)`` in an ``except`` of ``run()`` sends)."""
    if not 200 <= status < 300:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, str):
        return None
    try:
        inner = json.loads(body)
    except ValueError:
        return body
    return None if isinstance(inner, (list, dict)) else body


def error_text_message(what: str, status: int, answer: str) -> str:
    """The pattern named once, with the fix (instead of a finding per probe it shows in)."""
    return (f"run() catches exceptions and answers their text with status {status} ({what}: {answer[:80]!r}), so a "
            "client cannot tell an error from an answer; fix: raise instead (drop the except that returns str(e)); "
            "azmlinfsrv answers 500")


def classify(probe: Probe, status: int, text: str, policy: str, *, has_key: bool,
             output_schema: Mapping[str, Any] | None = None, classes: Sequence[Any] = (),
             wire: Wire | None = None, error_text_named: bool = False) -> Judgement | None:
    """How an answer to ``probe`` under ``policy``, or None when it is fine.

    A leak is checked separately (a failure under every policy). ``azure`` excuses exactly what
    azmlinfsrv does for input it cannot score: a 500, and bad values scored with a 200. With
    ``error_text_named``, an exception's text answered with 200 is not judged again per probe.
    """
    lenient = DEFECT if policy == "azure" else FAILURE
    if probe.unauthenticated:
        if status in (401, 403):
            return None
        if not has_key:
            return Judgement(DEFECT, f"the spec declares Bearer auth but the endpoint answered {status} without a "
                                     "key (no key is configured for this stage)")
        return Judgement(FAILURE,
                         f"the endpoint has a key but answered {status} to a request without it: auth not enforced")
    if 400 <= status < 500:
        return None
    if status >= 500:
        wrong = f"answered {status} (a client error should be 4xx)"
        return Judgement(lenient if status == 500 else FAILURE, f"{probe.what}: {wrong}: {text[:120]}", wrong)
    if 200 <= status < 300:
        if error_text_named and error_text(status, text) is not None:
            return None
        problem = _answer_problem(probe, text, output_schema, classes, wire)
        if probe.expect == "tolerate":
            return None if problem is None else Judgement(FAILURE, f"{probe.what}: answered {status} but {problem}")
        scored = f"scored with status {status} instead of refused"
        return Judgement(lenient, f"{probe.what}: {scored}: {text[:120]}", scored)
    return Judgement(FAILURE, f"{probe.what}: answered {status}: {text[:120]}")


def _answer_problem(probe: Probe, text: str, output_schema: Mapping[str, Any] | None,
                    classes: Sequence[Any], wire: Wire | None) -> str | None:
    if probe.rows is None:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return f"the answer is not JSON: {text[:120]!r}"
    return output_violation(body, output_schema, probe.rows, classes, wire)

