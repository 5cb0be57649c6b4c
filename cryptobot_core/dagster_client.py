"""A small GraphQL client for a running Dagster webserver (no dagster import).

Used by ``cryptobot backfill`` so that scripted backfills go through Dagster and show in
its UI like any other backfill. Only the few operations the CLI needs are here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from cryptobot_core.errors import CryptobotError, ValidationError

log = logging.getLogger(__name__)

# Backfill states that will not change any more.
TERMINAL_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)
SUCCESS_STATUSES = frozenset({"COMPLETED", "COMPLETED_SUCCESS"})


class DagsterError(CryptobotError):
    """The Dagster webserver could not be reached or refused a request."""


@dataclass(frozen=True)
class AssetProgress:
    """Partition counts of one asset in a backfill."""

    asset: str
    targeted: int
    in_progress: int
    materialized: int
    failed: int


@dataclass(frozen=True)
class BackfillStatus:
    """Where a backfill is: its status and per-asset partition counts."""

    backfill_id: str
    status: str
    assets: tuple[AssetProgress, ...]

    @property
    def done(self) -> bool:
        """True when the backfill will not change any more."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True when it finished with every partition materialized."""
        return self.status in SUCCESS_STATUSES and self.failed == 0

    @property
    def targeted(self) -> int:
        """Partitions targeted over all assets."""
        return sum(a.targeted for a in self.assets)

    @property
    def materialized(self) -> int:
        """Partitions materialized over all assets."""
        return sum(a.materialized for a in self.assets)

    @property
    def failed(self) -> int:
        """Partitions failed over all assets."""
        return sum(a.failed for a in self.assets)


_LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on PythonError { message }
  }
}
"""

_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id
      status
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on Error { message }
    ... on PythonError { message }
  }
}
"""

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


class DagsterClient:
    """GraphQL over HTTP to ``{url}/graphql``."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

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
        data = self.query(_ASSET_REPO, {"key": {"path": [asset]}})["assetNodeOrError"]
        if data["__typename"] != "AssetNode":
            raise DagsterError(
                f"asset {asset!r} is not defined in the Dagster code location: "
                f"{data.get('message', data['__typename'])}"
            )
        repo = data["repository"]
        return {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]}

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

    def launch_backfill(
        self,
        assets: Sequence[str],
        partition_names: Sequence[str],
        *,
        title: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Launch an asset backfill of ``partition_names``; returns the backfill id."""
        if not partition_names:
            raise ValidationError("a backfill needs at least one partition")
        params: dict[str, Any] = {
            "assetSelection": [{"path": [a]} for a in assets],
            "partitionNames": list(partition_names),
            "fromFailure": False,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        if title:
            params["title"] = title
        out = self.query(_LAUNCH, {"params": params})["launchPartitionBackfill"]
        if out["__typename"] != "LaunchBackfillSuccess":
            raise DagsterError(
                f"Dagster refused the backfill ({out['__typename']}): {out.get('message', '')}"
            )
        backfill_id: str = out["backfillId"]
        log.info("launched backfill %s of %d partitions", backfill_id, len(partition_names))
        return backfill_id

    def backfill_status(self, backfill_id: str) -> BackfillStatus:
        """Status and partition counts of a backfill."""
        out = self.query(_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if out["__typename"] != "PartitionBackfill":
            raise DagsterError(f"backfill {backfill_id}: {out.get('message', out['__typename'])}")
        assets = []
        for item in (out.get("assetBackfillData") or {}).get("assetBackfillStatuses", []):
            if item["__typename"] != "AssetPartitionsStatusCounts":
                continue
            assets.append(
                AssetProgress(
                    asset="/".join(item["assetKey"]["path"]),
                    targeted=item["numPartitionsTargeted"],
                    in_progress=item["numPartitionsInProgress"],
                    materialized=item["numPartitionsMaterialized"],
                    failed=item["numPartitionsFailed"],
                )
            )
        return BackfillStatus(out["id"], out["status"], tuple(assets))
