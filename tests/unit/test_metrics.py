"""The metrics exposition and the shared directory's start-up cleaning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from iwork_mc import metrics
from iwork_mc.privacy import mask_digits
from iwork_mc.store.base import QueueSnapshot


def families(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text.decode())
    }


def test_exposition_without_the_store_says_so() -> None:
    """A scrape the store did not answer still parses, with iwork_mc_store_up 0."""
    found = families(metrics.exposition(None, now_ms=0))
    assert [({}, 0.0)] == found["iwork_mc_store_up"]
    assert "iwork_mc_messages" not in found
    assert "iwork_mc_top_calls" in found


def test_exposition_of_the_store_snapshot() -> None:
    """Messages by status and channel, the due queue and its oldest message's age, in seconds."""
    snapshot = QueueSnapshot(
        by_status_channel={("delivered", "sandbox"): 3, ("queued", ""): 2},
        due=2,
        oldest_due_at_ms=10_000,
    )
    found = families(metrics.exposition(snapshot, now_ms=12_500))
    assert [
        ({"status": "delivered", "channel": "sandbox"}, 3.0),
        ({"status": "queued", "channel": ""}, 2.0),
    ] == found["iwork_mc_messages"]
    assert [({}, 2.0)] == found["iwork_mc_queue_due"]
    assert [({}, 2.5)] == found["iwork_mc_queue_oldest_due_age_seconds"]
    assert [({}, 1.0)] == found["iwork_mc_store_up"]


def dead_pid() -> int:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(ended.stdout)


def share(directory: Path) -> None:
    """share_directory in a process of its own (it switches prometheus-client's value class)."""
    code = "import sys; from pathlib import Path; from iwork_mc import metrics; "
    code += "metrics.share_directory(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(directory)], check=True, timeout=60)


def test_a_directory_nobody_uses_is_emptied(tmp_path: Path) -> None:
    """Files of processes that have all ended are removed: counters start again from zero."""
    gone = dead_pid()
    for name in (f"counter_{gone}.db", f"gauge_livesum_{gone}.db"):
        (tmp_path / name).write_bytes(b"")
    share(tmp_path)
    assert [] == sorted(p.name for p in tmp_path.glob("*.db"))


def test_a_directory_in_use_keeps_counters(tmp_path: Path) -> None:
    """While another process uses it, a dead process's counters stay and its live gauges go."""
    gone, alive = dead_pid(), os.getpid()
    for name in (f"counter_{gone}.db", f"gauge_livesum_{gone}.db", f"counter_{alive}.db"):
        (tmp_path / name).write_bytes(b"")
    share(tmp_path)
    assert {f"counter_{alive}.db", f"counter_{gone}.db"} == {p.name for p in tmp_path.glob("*.db")}


def test_mask_digits_hides_phone_like_runs() -> None:
    """A driver's message keeps its words; numbers of seven digits or more are masked."""
    text = "duplicate key (+8613888888888, 13912345678) in table 42 port 5432"
    assert "duplicate key (138****8888, 139****5678) in table 42 port 5432" == mask_digits(text)


def test_the_grafana_dashboard_uses_only_exported_metrics() -> None:
    """Every metric the dashboard in docs/ queries is one /metrics exports."""
    dashboard = Path(__file__).parents[2] / "docs" / "grafana" / "iwork-mc.json"
    panels = json.loads(dashboard.read_text(encoding="utf-8"))["panels"]
    queried = {
        re.sub(r"_(total|bucket|sum|count)$", "", name)
        for panel in panels
        for target in panel.get("targets", [])
        for name in re.findall(r"iwork_mc_\w+", target["expr"])
    }
    snapshot = QueueSnapshot(by_status_channel={}, due=0, oldest_due_at_ms=None)
    exported = set(families(metrics.exposition(snapshot, now_ms=0)))
    assert len(queried) >= 10
    assert set() == queried - exported
