"""Acting on dead letters: what `mesbridge dlq` and the operator console both do.

A dead letter whose failure was **uncertain** may already have been applied by the ERP, and a
**partial** one failed after its run had applied a write that is not safe to repeat. Replaying either
runs the verify lookup of each write first when every write of its pipeline is protected (a verify
lookup, an idempotent method or flag, an idempotency key); otherwise the replay is refused unless
forced, naming the writes that could apply twice.

A polled record whose key was polled again at a later version is refused too, unless forced: the
newer record holds the ERP's current state, and a replay of the older one would write over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.pipeline.executor import step_ids
from engine.pipeline.steps.call import CallStep
from engine.store import Store

if TYPE_CHECKING:
    from engine.config.root import Project

__all__ = ["Replay", "replay_dead", "unprotected_writes"]


@dataclass(frozen=True)
class Replay:
    """What became of one replay request."""

    event_id: str
    replayed: bool
    verify_first: bool = False
    reason: str = ""
    """Why it was not replayed: no such dead letter, or an uncertain one with unprotected writes."""
    pipeline: str = ""
    served: bool = True
    """False when the config the replay was checked against does not have the event's pipeline: no
    worker of that config delivers it, and it waits for a replica that serves the pipeline."""


def unprotected_writes(project: Project, pipeline: str) -> list[str]:
    """The writes of a pipeline that a later run of the event may apply twice, as `METHOD target`: those
    nothing protects, and those protected only by a verify lookup that reads what a later run reads
    anew (a call's result, `now()`), so that it may not find what the earlier run created."""
    entry = project.pipelines[pipeline]
    configs = project.connector_configs
    steps = list(step_ids(entry.pipeline.steps))
    found = []
    for step, where in steps:
        if not isinstance(step, CallStep):
            continue
        protection = step.protection(configs)
        if protection is None:
            found.append(f"{step.describe(configs)} ({where})")
        elif protection == "verify" and step.protection(configs, verify=False) is None:
            anew = step.verify_reads_anew(configs, [s for s, _ in steps])
            if anew is not None:
                found.append(f"{step.describe(configs)} ({where}), whose verify lookup reads {anew}")
    return found


async def replay_dead(store: Store, project: Project | None, event_id: str, *, force: bool = False) -> Replay:
    """Queue a dead letter again; an uncertain one runs its verify lookups first, or needs `force`."""
    dead = await store.get_dead(event_id)
    if dead is None:
        return Replay(event_id, False, reason=f"no dead letter {event_id}")
    version = dead.payload.get("version")
    newer = (
        None
        if force or not isinstance(version, str)
        else await store.newer_version(dead.pipeline, dead.key, version)
    )
    if newer is not None:
        return Replay(
            event_id,
            False,
            reason=f"{dead.key} was polled again since, at version {newer}: replaying this older record "
            "would write it over the newer one. Drop it, or replay it with --force",
        )
    served = project is None or dead.pipeline in project.pipelines
    if dead.kind not in ("uncertain", "partial") or force:
        return Replay(event_id, await store.replay_dead(event_id), pipeline=dead.pipeline, served=served)
    if project is None:
        return Replay(event_id, False, reason=f"it is {dead.kind} and the config root could not be read")
    if dead.pipeline not in project.pipelines:  # its writes cannot be told protected: none is assumed
        return Replay(
            event_id,
            False,
            reason=f"it is {dead.kind} and its pipeline {dead.pipeline} is not in the config (a replica "
            "serving other bindings, or a --root other than the service's), so whether a write of it could "
            "apply twice is unknown. Check the ERP, then replay it with --force if it was not applied",
        )
    unprotected = unprotected_writes(project, dead.pipeline)
    if unprotected:
        listed = "; ".join(unprotected)
        what = (
            "its outcome is unknown (it may have been applied)"
            if dead.kind == "uncertain"
            else "it failed after a write of it had been applied"
        )
        return Replay(
            event_id,
            False,
            reason=f"{what}, and these writes of {dead.pipeline} are not idempotent and have no verify "
            f"lookup a replay can count on: {listed}. Check the ERP, then replay it with --force if it "
            "was not applied",
        )
    replayed = await store.replay_dead(event_id, verify_first=True)
    return Replay(event_id, replayed, verify_first=True, pipeline=dead.pipeline)
