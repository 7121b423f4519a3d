//! What every coordinated request carries (its [`Plan`], where its reply goes, the
//! replicas it targets) and what its reply says (the response and its receipt). Shared by
//! the coordinator and the read and write paths, and importing none of them.

use crate::command::Key;
use crate::dynamo::dvv::Object;
use crate::dynamo::level::Requirement;
use crate::dynamo::messages::OpId;
use crate::dynamo::ring::Ring;
use crate::id::{NodeId, RequestId};
use crate::request::{ReadRepair, Receipt, ReceiptReplica, Response, VersionedResponse};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet};

/// Where the reply of a coordinated request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    Client,
    Forwarder { node: NodeId, op: OpId },
}

/// A replica a request was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The owner it counts for.
    pub(crate) owner: NodeId,
    /// Whether it stands in for `owner` (sloppy quorum).
    pub(crate) fallback: bool,
}

/// What every coordinated request carries.
pub(crate) struct Plan {
    pub(crate) request: RequestId,
    pub(crate) reply_to: ReplyTo,
    pub(crate) key: Key,
    pub(crate) requirement: Requirement,
    /// While ranges move, what a write needs from the owners after the move too.
    pub(crate) next: Option<Requirement>,
    pub(crate) sloppy: bool,
    pub(crate) deadline: Time,
}

/// A successful Dynamo response.
pub(crate) fn versioned(object: &Object, receipt: Receipt) -> Response {
    Response::Versioned(VersionedResponse {
        siblings: object.values(),
        context: object.context().encode(),
        receipt,
    })
}

/// Owners whose answer counts: primaries for themselves; fallbacks for the owner they
/// stand in for, only in sloppy requests.
pub(crate) fn counted_owners(
    targets: &BTreeMap<NodeId, Target>,
    answered: &[NodeId],
    sloppy: bool,
) -> BTreeSet<NodeId> {
    answered
        .iter()
        .filter_map(|n| targets.get(n))
        .filter(|t| !t.fallback || sloppy)
        .map(|t| t.owner)
        .collect()
}

/// "n0 n2", or "none".
pub(crate) fn names(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return "none".to_owned();
    }
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The receipt of a request that met its level with the answers of `answered`.
pub(crate) fn receipt(
    ring: &Ring,
    requirement: &Requirement,
    targets: &BTreeMap<NodeId, Target>,
    answered: &[NodeId],
    repair: ReadRepair,
) -> Receipt {
    let replicas: Vec<ReceiptReplica> = answered
        .iter()
        .filter_map(|n| {
            targets.get(n).map(|t| ReceiptReplica {
                node: *n,
                region: ring.region_of(*n).to_owned(),
                fallback: t.fallback,
            })
        })
        .collect();
    let hints_written = replicas.iter().filter(|r| r.fallback).count() as u32;
    Receipt {
        requested: requirement.level().to_string(),
        met: true,
        answered: replicas,
        hints_written,
        read_repair: repair,
    }
}
