//! What is explored: the cluster, the clients' requests, which replicas may crash, an
//! optional message mutation (negative controls), and the budget of faults, reorderings
//! and timer moves a schedule may use.

use super::Subject;
use crate::id::NodeId;
use crate::protocol::{Membership, Protocol};
use crate::request::ClientRequest;

/// A change a negative control makes to every message as it enters the network.
pub(crate) type Mutation<P> = fn(&mut <P as Protocol>::Message);

/// What is explored: the cluster, the clients' requests (one per client, at the replica
/// named with it) and an optional message mutation.
pub(crate) struct Scenario<P: Subject> {
    pub(crate) cluster: Membership,
    pub(crate) config: P::Config,
    pub(crate) requests: Vec<(NodeId, ClientRequest)>,
    /// Clients send their requests before anything else happens (otherwise at any time).
    pub(crate) concurrent_start: bool,
    /// Replicas that may crash (within the budget), and whether they restart or stay
    /// down (`None`: either).
    pub(crate) crashable: Vec<NodeId>,
    pub(crate) restart: Option<bool>,
    /// Timers fire only once the crash budget is spent (recovery of a failed leader).
    pub(crate) crash_first: bool,
    pub(crate) mutation: Option<Mutation<P>>,
}

/// Faults, reorderings and timer moves a schedule may still use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Budget {
    /// Deliveries that overtake an earlier message to the same replica.
    pub(crate) reorders: u8,
    pub(crate) drops: u8,
    pub(crate) crashes: u8,
    pub(crate) timers: u8,
}

impl Budget {
    pub(crate) const NONE: Self = Self {
        reorders: 0,
        drops: 0,
        crashes: 0,
        timers: 0,
    };

    pub(crate) fn new(reorders: u8, drops: u8, crashes: u8, timers: u8) -> Self {
        Self {
            reorders,
            drops,
            crashes,
            timers,
        }
    }
}
