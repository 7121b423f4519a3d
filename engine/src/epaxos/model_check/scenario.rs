//! What is explored: the cluster, the clients' requests, which replicas may crash, an
//! optional message mutation (negative controls), and the budget of faults, reorderings
//! and timer moves a schedule may use.

use crate::epaxos::{EpaxosConfig, Message};
use crate::id::NodeId;
use crate::protocol::Membership;
use crate::request::ClientRequest;

/// A change a negative control makes to every message as it enters the network.
pub(super) type Mutation = fn(&mut Message);

/// What is explored: the cluster, the clients' requests (one per client, at the replica
/// named with it) and an optional message mutation.
pub(super) struct Scenario {
    pub(super) cluster: Membership,
    pub(super) config: EpaxosConfig,
    pub(super) requests: Vec<(NodeId, ClientRequest)>,
    /// Clients send their requests before anything else happens (otherwise at any time).
    pub(super) concurrent_start: bool,
    /// Replicas that may crash (within the budget), and whether they restart or stay
    /// down (`None`: either).
    pub(super) crashable: Vec<NodeId>,
    pub(super) restart: Option<bool>,
    /// Timers fire only once the crash budget is spent (recovery of a failed leader).
    pub(super) crash_first: bool,
    pub(super) mutation: Option<Mutation>,
}

/// Faults, reorderings and timer moves a schedule may still use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Budget {
    /// Deliveries that overtake an earlier message to the same replica.
    pub(super) reorders: u8,
    pub(super) drops: u8,
    pub(super) crashes: u8,
    pub(super) timers: u8,
}

impl Budget {
    pub(super) const NONE: Self = Self {
        reorders: 0,
        drops: 0,
        crashes: 0,
        timers: 0,
    };
}
