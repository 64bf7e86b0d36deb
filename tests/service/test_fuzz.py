"""Fuzzing against the OpenAPI document (schemathesis, bounded): whatever a caller sends, the
service answers within its schema and never with a server error. The event stream is left out
(it never ends; it is tested on a real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.service.conftest import SCENARIO, Ledger, make_ledger

from dosewise import app as api
from dosewise.app import Desk
from dosewise.ledger.keys import generate
from dosewise.service.app import create_app
from dosewise.service.settings import Settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
_LEDGER: dict[str, Ledger] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Any]:
    url = str(tmp_path_factory.mktemp("fuzz") / "ledger.db")
    _LEDGER["ledger"] = make_ledger(url)
    desk = Desk.open(url)
    desk.propose_round(api.load_text(SCENARIO), identity="carla", round_id="T1")
    desk.approve_round("T1", identity="rita")
    key = tmp_path_factory.mktemp("ledger-key") / "ledger.key"
    generate(key)  # receipts sign a checkpoint when none covers their event yet
    app = create_app(Settings(db=url, who=shared_data / "surveillance" / "WHO-COVID-19-global-data.csv",
                              ledger_key=key), desk=desk)
    yield schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/events")
    desk.close()


FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("label", ["coordinator", "reviewer", "participant", "donor", "admin"])
def test_no_server_error_and_schema_kept(api_schema: Any, label: str) -> None:
    """Every operation, as each of these identities: a bounded number of generated requests."""
    headers = _LEDGER["ledger"].auth(label)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()


def test_the_harness_finds_a_planted_server_error(api_schema: Any) -> None:
    """The same harness on a route that fails for some inputs: the fuzzing reports it."""
    from fastapi import FastAPI

    planted = FastAPI()

    @planted.get("/planted")
    def boom(n: int) -> dict[str, int]:
        if n > 5:
            raise RuntimeError("planted")
        return {"n": n}

    from dosewise.service.problems import install

    install(planted)
    operation = next(r.ok() for r in schemathesis.openapi.from_asgi("/openapi.json", planted).get_all_operations())

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    with pytest.raises(Exception, match="planted"):
        run()
