"""Tasks, extensions, services, Brains and handoffs (DESIGN §5)."""

from __future__ import annotations

from typing import Any

from domain import commands as c
from domain.commands import Rejected
from domain.events import DomainEvent
from domain.lifecycle import decide, fold


def run(aggregate: str, *cmds: Any) -> tuple[Any, list[str]]:
    events: list[DomainEvent] = []
    seen: list[str] = []
    for cmd in cmds:
        decision = decide(aggregate, fold(aggregate, events), cmd)
        if isinstance(decision, Rejected):
            seen.append(f"Rejected: {decision.reason}")
        else:
            events += decision
            seen += [type(e).__name__ for e in decision]
    return fold(aggregate, events), seen


LAUNCH = c.LaunchTask(goal="g", mode="script", timeout_seconds=60)
ANNOUNCE = c.AnnounceExtension(name="weather", version="1", mcp_url="http://e/mcp")


def test_task_runs_to_completion_and_absorbs() -> None:
    state, seen = run(
        "task", LAUNCH, c.RecordTaskStatus(status="running"),
        c.RecordTaskStatus(status="progress", message="50%"),
        c.RecordTaskStatus(status="completed", result="ok"),
        c.TimeOutTask(timeout_seconds=60),
    )  # fmt: skip
    assert state.status == "completed"
    assert seen[:4] == ["TaskLaunched", "TaskStarted", "TaskProgressed", "TaskCompleted"]
    assert seen[4].startswith("Rejected: task is already completed")


def test_a_silent_task_times_out_and_duplicates_are_no_ops() -> None:
    state, seen = run("task", LAUNCH, LAUNCH, c.TimeOutTask(60), c.TimeOutTask(60))
    assert state.status == "timed_out" and seen == ["TaskLaunched", "TaskTimedOut"]


def test_task_can_be_cancelled_while_launched() -> None:
    state, _ = run("task", LAUNCH, c.CancelTask("operator"))
    assert state.status == "cancelled"


def test_extension_announce_keepalive_offline_online_deregister() -> None:
    state, seen = run(
        "extension", ANNOUNCE, ANNOUNCE, c.RecordHeartbeat(), c.MarkExtensionOffline(),
        c.MarkExtensionOffline(), c.RecordHeartbeat(), c.DeregisterExtension("bye"),
        c.RecordHeartbeat(),
    )  # fmt: skip
    assert seen[:5] == [
        "ExtensionAnnounced", "ExtensionWentOffline", "ExtensionCameOnline",
        "ExtensionDeregistered", "Rejected: illegal transition deregistered -> come_online",
    ]  # fmt: skip
    assert state.status == "deregistered"


def test_extension_reannounce_with_a_new_version_or_tools_is_recorded() -> None:
    newer = c.AnnounceExtension(name="weather", version="2", mcp_url="http://e/mcp")
    tools = c.RecordTools(tools=({"name": "forecast"},))
    state, seen = run("extension", ANNOUNCE, newer, tools, tools, c.MarkExtensionOffline(), newer)
    assert seen == [
        "ExtensionAnnounced", "ExtensionAnnounced", "ExtensionToolsDiscovered",
        "ExtensionWentOffline", "ExtensionCameOnline",
    ]  # fmt: skip
    assert state.ext_version == "2" and state.tools == ({"name": "forecast"},)


def test_a_deregistered_extension_may_announce_again() -> None:
    state, _ = run("extension", ANNOUNCE, c.DeregisterExtension(), ANNOUNCE)
    assert state.status == "online"


def test_service_flips_only_on_change() -> None:
    up = c.ReportServiceHealth(up=True, service="worker", instance="w-1")
    down = c.ReportServiceHealth(up=False, service="worker", instance="w-1", reason="silent")
    state, seen = run("service", up, up, down, down, up)
    assert seen == ["ServiceUp", "ServiceDown", "ServiceUp"] and state.status == "up"


def test_brain_roles_and_the_growing_generation() -> None:
    state, seen = run(
        "brain", c.StartBrain("pending", "2"), c.ActivateBrain(3), c.DrainBrain("h-1"),
        c.ResumeBrain("h-1", "aborted"), c.DrainBrain("h-2"), c.ShutDownBrain("handed over"),
        c.ActivateBrain(4),
    )  # fmt: skip
    assert seen[:6] == [
        "BrainStarted", "BrainActivated", "BrainDrainStarted", "BrainResumed",
        "BrainDrainStarted", "BrainShutDown",
    ]  # fmt: skip
    assert seen[6].startswith("Rejected: brain is already shutdown")
    assert (state.status, state.generation) == ("shutdown", 3)


def test_brain_refuses_a_generation_that_does_not_grow() -> None:
    _, seen = run("brain", c.StartBrain("pending", "1"), c.ActivateBrain(0))
    assert seen[-1] == "Rejected: illegal transition pending -> activate"


def test_handoff_completes_only_with_its_generation() -> None:
    req = c.RequestHandoff(to_instance="b", to_version="2", generation=7, from_instance="a")
    state, seen = run(
        "handoff", req, c.StartHandoffDrain("a"), c.CompleteHandoff(6), c.CompleteHandoff(7)
    )
    assert seen == [
        "HandoffRequested", "HandoffDrainStarted",
        "Rejected: illegal transition draining -> complete", "HandoffCompleted",
    ]  # fmt: skip
    assert state.status == "completed"


def test_handoff_abort_then_nothing_more() -> None:
    req = c.RequestHandoff(to_instance="b", to_version="2", generation=1)
    state, seen = run("handoff", req, c.AbortHandoff("timeout"), c.StartHandoffDrain("a"))
    assert state.status == "aborted" and seen[-1].startswith("Rejected: handoff is already")
