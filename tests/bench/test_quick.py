"""The benchmark suite's correctness checks (bench/run.py --check-only), never its timings.

One short run over loopback: accept with one and two gateway processes (SQLite),
end to end through SMPP to a FakeSMSC, and overload against flow control.  It
asserts only what must hold on any machine: no failed answer, every
acknowledged call stored once, every acknowledged message at the SMSC, and
code 7 (not errors, not losses) under overload.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk; `make bench` installs it)")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--check-only", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert out.exists(), (
        f"run.py wrote no results ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    data["_output"] = done.stdout + done.stderr
    data["_returncode"] = done.returncode
    return data


def test_every_check_of_the_run_passes(results: dict[str, Any]) -> None:
    failed = [c for c in results["checks"] if not c["ok"]]
    assert not failed, results["_output"]
    assert results["_returncode"] == 0, results["_output"]


def test_accept_answers_without_failure_and_stores_every_acknowledged_call(
    results: dict[str, Any],
) -> None:
    runs = results["accept"]
    assert {r["processes"] for r in runs} == {1, 2}
    for r in runs:
        assert r["successes"] > 0, r
        assert r["errors"] == 0, r
        assert r["replayed"] == 0, r
        assert r["duplicates"] == 0, r
        # Acknowledged ⊆ stored; at most the calls in flight when wrk stopped on top.
        assert r["successes"] <= r["stored"] <= r["successes"] + r["concurrency"], r


def test_every_acknowledged_message_reaches_the_smsc(results: dict[str, Any]) -> None:
    (e2e,) = results["e2e"]
    assert e2e["errors"] == 0
    assert e2e["successes"] <= e2e["stored"] <= e2e["reached"], e2e
    assert e2e["receipts"] >= e2e["successes"], e2e
    assert e2e["delivered_rows"] == e2e["stored"], e2e


def test_overload_answers_code_7_and_loses_nothing(results: dict[str, Any]) -> None:
    overload = results["overload"]
    assert overload["limited"] > 0, overload
    assert overload["errors"] == 0, overload  # every answer a success or code 7
    assert overload["socket_errors"] == 0, overload
    assert overload["successes"] <= overload["stored"], overload
    assert overload["stored"] <= overload["successes"] + overload["concurrency"], overload
    assert overload["duplicates"] == 0, overload
