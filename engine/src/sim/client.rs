//! Simulated clients: what they ask (a [`Workload`]) and what the simulator records about
//! each request ([`OpRecord`]).

use crate::check::OpRecord;
use crate::command::Command;
use crate::id::{ClientId, NodeId};
use crate::request::Consistency;
use crate::time::Time;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// One request a workload wants issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp {
    /// The command.
    pub command: Command,
    /// Requested consistency.
    pub consistency: Consistency,
    /// Dynamo causal context (empty for none).
    pub context: Vec<u8>,
    /// Dynamo sloppy-quorum override.
    pub sloppy: Option<bool>,
}

impl ClientOp {
    /// A linearizable request for `command`.
    pub fn linearizable(command: Command) -> Self {
        Self {
            command,
            consistency: Consistency::Linearizable,
            context: Vec::new(),
            sloppy: None,
        }
    }
}

/// What a simulated client asks for. Each client has its own RNG, seeded independently
/// from the run's seed and the client id.
pub trait Workload {
    /// The next request, or `None` when this client is done.
    fn next_op(&mut self, client: ClientId, rng: &mut ChaCha8Rng, now: Time) -> Option<ClientOp>;

    /// Called when one of this client's requests completes or times out (e.g. to keep a
    /// causal context for session reads).
    fn observe(&mut self, _record: &OpRecord) {}

    /// When the next request may be issued, if later than `now`: think time, or a
    /// scripted scenario waiting for a fault or a repair to happen. Default: at once.
    fn not_before(&mut self, _now: Time) -> Option<Time> {
        None
    }
}

/// Simulator-side state of one client.
pub(crate) struct SimClient {
    pub(crate) region: usize,
    /// Replicas by distance from the client's region; `target` indexes it.
    pub(crate) replicas: Vec<NodeId>,
    pub(crate) target: usize,
    pub(crate) next_seq: u64,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) workload: Box<dyn Workload>,
    /// Sequence numbers of outstanding requests.
    pub(crate) outstanding: BTreeSet<u64>,
    pub(crate) done: bool,
}

impl SimClient {
    pub(crate) fn current_replica(&self) -> NodeId {
        self.replicas[self.target % self.replicas.len()]
    }

    /// Move to the next-nearest replica (after a timeout).
    pub(crate) fn fail_over(&mut self) {
        self.target = (self.target + 1) % self.replicas.len();
    }

    /// Send the next requests to `node` (failing over from it in distance order).
    pub(crate) fn redirect(&mut self, node: NodeId) {
        if let Some(index) = self.replicas.iter().position(|&n| n == node) {
            self.target = index;
        }
    }
}
