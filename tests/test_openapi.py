"""The OpenAPI document and the server agree: schemathesis over every operation, live.

A real `vidgate serve` on loopback (no engine: nothing needs rendering) is sent cases that
schemathesis generates from the server's own `/openapi.json`, conforming and not (positive
and negative modes), with a fixed seed (`derandomize`) and a bounded number per operation
(`VIDGATE_OPENAPI_CASES`). Every check of schemathesis runs except those listed in
`EXCLUDED`, each with the reason it cannot hold for vidgate. The test fails when any answer
breaks the document (an undeclared status, a body or header unlike its schema, a content
type not declared, any 5xx), and unless every operation of the document was exercised.
"""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import UndefinedStatusCode

from support import fresh_database_url, server_env, start_server

ADMIN = "openapi-admin-token"
CASES = int(os.environ.get("VIDGATE_OPENAPI_CASES", "20"))  # per operation
# The checks that cannot hold for vidgate, and why; every other check runs.
EXCLUDED = {
    # "Lenient input" (spec section 1): which values are valid crosses fields (a size the
    # model offers, size against aspect_ratio, a source video that exists and is completed),
    # which JSON Schema cannot state, so schema-valid data may still be a 400 or 404.
    "positive_data_acceptance",
    # They create resources and replay them across operations (stateful links), which the
    # document does not declare; the access matrix (test_access_matrix.py) covers ownership.
    "use_after_free", "ensure_resource_availability", "object_level_authorization",
}


def checks() -> list:
    load_all_checks()
    return [check for check in CHECKS.get_all() if check.__name__ not in EXCLUDED]


def hypothesis_settings() -> hsettings:
    return hsettings(max_examples=CASES, derandomize=True, deadline=None, database=None,
                     phases=[Phase.explicit, Phase.generate],
                     suppress_health_check=list(HealthCheck))


def credential(operation, key: str) -> dict[str, str]:
    """The Authorization header the operation's security scheme asks for."""
    schemes = {name for requirement in operation.definition.raw.get("security", [])
               for name in requirement}
    if "AdminToken" in schemes:
        return {"Authorization": f"Bearer {ADMIN}"}
    if "ApiKey" in schemes:
        return {"Authorization": f"Bearer {key}"}
    return {}


def strategies(operation, real_ids: dict[str, str]) -> list:
    """The document's examples, positive and negative cases; where the path names a task,
    also ones naming a real task (not for event streams: with no engine, a real task's
    stream never ends)."""
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    found = [operation.as_strategy(generation_mode=mode) for mode in modes]
    found += operation.get_strategies_from_examples()
    names = {param.name for param in operation.path_parameters}
    ids = {name: value for name, value in real_ids.items() if name in names}
    if ids and not operation.path.endswith("/events"):
        found += [operation.as_strategy(generation_mode=mode, path_parameters=ids)
                  for mode in modes]
    return found


def exercise(operation, base_url: str, session: requests.Session, headers: dict[str, str],
             real_ids: dict[str, str], seen: Counter, run_checks: list) -> None:
    """Cases of one operation, each answer checked."""

    @hypothesis_settings()
    @given(case=st.one_of(*strategies(operation, real_ids)))
    def run(case) -> None:
        case.headers = {**(case.headers or {}), **headers}  # the real credential
        seen[(operation.method.upper(), operation.path)] += 1
        case.call_and_validate(base_url=base_url, session=session, headers=headers,
                               checks=run_checks, timeout=30)

    run()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("openapi")
    url, cleanup = fresh_database_url(tmp_path)
    server = start_server(server_env(tmp_path / "data", url, VIDGATE_ROLE="api",
                                     VIDGATE_ADMIN_TOKEN=ADMIN))
    try:
        yield server
    finally:
        server.stop()
        cleanup()


def test_schemathesis_every_operation(live) -> None:
    document = httpx.get(live.url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    declared = {(method.upper(), path) for path, item in document["paths"].items()
                for method in item}
    assert {(op.method.upper(), op.path) for op in operations} == declared
    seen: Counter = Counter()
    failures: list[str] = []
    run_checks = checks()
    created = httpx.post(live.url + "/v1/videos", json={"prompt": "a cat"},
                         headers=live.headers(), timeout=30)
    assert created.status_code == 200, created.text
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = httpx.post(live.url + "/admin/keys", json={"name": "k"}, headers=admin).json()
    real_ids = {"video_id": created.json()["id"], "task_id": created.json()["id"],
                "key_id": key["id"], "model_id": "sora-2"}
    with requests.Session() as session:
        for operation in operations:
            try:
                exercise(operation, live.url, session, credential(operation, live.key),
                         real_ids, seen, run_checks)
            except Exception as exc:  # report every operation's disagreement, not the first
                failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert not failures, "\n\n".join(failures)
    assert set(seen) == declared, f"operations never exercised: {declared - set(seen)}"
    assert httpx.get(live.url + "/healthz").status_code == 200


def test_schemathesis_reports_an_undeclared_status(live) -> None:
    """The check above can fail: a document that leaves out the 404 of a status read makes
    schemathesis report the server's 404 as undocumented."""
    document = httpx.get(live.url + "/openapi.json", timeout=30).json()
    del document["paths"]["/v1/videos/{video_id}"]["get"]["responses"]["404"]
    schema = schemathesis.openapi.from_dict(document)
    operation = schema["/v1/videos/{video_id}"]["GET"]
    with requests.Session() as session, pytest.raises(FailureGroup) as found:
        exercise(operation, live.url, session, credential(operation, live.key), {}, Counter(),
                 checks())
    failures = found.value.exceptions
    assert [type(failure) for failure in failures] == [UndefinedStatusCode], failures
    assert failures[0].status_code == 404


def test_unsupported_methods_are_405_with_allow(live) -> None:
    """What schemathesis' `unsupported_method` check asks, on every path of the document
    (the generated cases above only use declared methods): an undeclared method is a 405
    in the family's error shape, whose Allow names methods the path really takes."""
    document = httpx.get(live.url + "/openapi.json", timeout=30).json()
    wrong = []
    with httpx.Client(base_url=live.url, timeout=30, headers=live.headers()) as client:
        for template, item in document["paths"].items():
            path = template.replace("{", "x").replace("}", "")
            method = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m.lower() not in item)
            response = client.request(method, path)
            error = response.json()["error"]
            allow = {m.strip() for m in response.headers.get("allow", "").split(",")}
            if (response.status_code != 405 or error["type"] != "invalid_request_error"
                    or not {m.upper() for m in item} <= allow):
                wrong.append(f"{method} {path}: {response.status_code} {allow} {error}")
            for other in allow - {"HEAD"}:
                if client.request(other, path).status_code == 405:
                    wrong.append(f"{other} {path}: 405 though Allow names it")
    assert not wrong, "\n".join(wrong)
