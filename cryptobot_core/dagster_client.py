"""A small GraphQL client for a running Dagster webserver (no dagster import).

Used by ``cryptobot backfill`` so that scripted backfills run as Dagster runs and show in
its UI like any other run. Only the few operations the CLI needs are here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from cryptobot_core.errors import CryptobotError

log = logging.getLogger(__name__)


class DagsterError(CryptobotError):
    """The Dagster webserver could not be reached or refused a request."""


# Dagster's run tags for a run that covers a range of partition keys.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


_ASSET_REPO = """
query AssetRepo($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode { repository { name location { name } } }
    ... on Error { message }
  }
}
"""

_ADD_PARTITION = """
mutation Add($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on Error { message }
    ... on PythonError { message }
  }
}
"""


_LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""

_RUNS = """
query Runs($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}
"""

# Dagster's job of the selected assets (every asset can be launched through it).
ASSET_JOB = "__ASSET_JOB"
# Run states that will not change any more, and the one that means success.
RUN_TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
RUN_SUCCESS = "SUCCESS"


class DagsterClient:
    """GraphQL over HTTP to ``{url}/graphql``."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)
        # Where each asset is defined does not change while a command runs: asked once.
        self._repositories: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> DagsterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation and return its ``data``, raising DagsterError on failure."""
        try:
            resp = self._http.post(
                "/graphql", json={"query": document, "variables": variables or {}}
            )
        except httpx.HTTPError as exc:
            raise DagsterError(
                f"Dagster webserver at {self.url} is not reachable ({exc}); start it with "
                f"`cryptobot up` or `dagster dev`, or set CRYPTOBOT_DAGSTER_URL"
            ) from exc
        if resp.status_code != 200:
            raise DagsterError(
                f"Dagster webserver at {self.url} answered HTTP {resp.status_code}: {resp.text[:300]}"
            )
        body = resp.json()
        if body.get("errors"):
            msgs = "; ".join(str(e.get("message")) for e in body["errors"])
            raise DagsterError(f"Dagster GraphQL error: {msgs}")
        data: dict[str, Any] = body["data"]
        return data

    def ping(self) -> bool:
        """True when the webserver answers /server_info."""
        try:
            return self._http.get("/server_info").status_code == 200
        except httpx.HTTPError:
            return False

    def repository_of(self, asset: str) -> dict[str, str]:
        """The repository selector (location and repository name) that defines ``asset``."""
        if asset in self._repositories:
            return self._repositories[asset]
        data = self.query(_ASSET_REPO, {"key": {"path": [asset]}})["assetNodeOrError"]
        if data["__typename"] != "AssetNode":
            raise DagsterError(
                f"asset {asset!r} is not defined in the Dagster code location: "
                f"{data.get('message', data['__typename'])}"
            )
        repo = data["repository"]
        selector = {
            "repositoryName": repo["name"],
            "repositoryLocationName": repo["location"]["name"],
        }
        self._repositories[asset] = selector
        return selector

    def add_dynamic_partitions(self, asset: str, partitions_def: str, keys: Sequence[str]) -> None:
        """Add ``keys`` to the dynamic partitions ``partitions_def`` (existing ones are fine)."""
        selector = self.repository_of(asset)
        for key in keys:
            res = self.query(
                _ADD_PARTITION, {"selector": selector, "name": partitions_def, "key": key}
            )
            out = res["addDynamicPartition"]
            kind = out["__typename"]
            if kind in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                continue
            raise DagsterError(
                f"could not add partition {key!r} to {partitions_def}: {out.get('message', kind)}"
            )

    def launch_run(self, asset: str, tags: dict[str, str]) -> str:
        """Queue one run of ``asset`` (and its checks) with ``tags``; returns the run id.

        A run starts as soon as the run queue takes it (seconds), where a backfill waits for
        the backfill daemon's next 30-s tick to create its runs and another to end.
        """
        selector = {
            **self.repository_of(asset),
            "jobName": ASSET_JOB,
            "assetSelection": [{"path": [asset]}],
        }
        params = {
            "selector": selector,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        out = self.query(_LAUNCH_RUN, {"params": params})["launchRun"]
        if out["__typename"] != "LaunchRunSuccess":
            raise DagsterError(
                f"Dagster refused the run of {asset} ({out['__typename']}): {out.get('message', '')}"
            )
        run_id: str = out["run"]["runId"]
        return run_id

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """Status of each run (QUEUED, STARTED, SUCCESS, FAILURE, ...)."""
        out = self.query(_RUNS, {"ids": list(run_ids)})["runsOrError"]
        if out["__typename"] != "Runs":
            raise DagsterError(f"cannot read runs: {out.get('message', out['__typename'])}")
        return {r["runId"]: r["status"] for r in out["results"]}
