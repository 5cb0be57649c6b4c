"""Facts about Dagster runs that several sensors share."""

import dagster as dg

# A run in one of these states still holds (or will hold) its slot: queued or going.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
