//! EPaxos as the explorer's subject: how a core is built and fingerprinted, which of
//! its messages are out of scope, and what starts a recovery.

use super::observations::Observations;
use crate::epaxos::{Epaxos, EpaxosConfig, InstanceId, Message, Record};
use crate::id::NodeId;
use crate::model_check::{FastHasher, Subject};
use crate::protocol::Membership;

impl Subject for Epaxos {
    type Config = EpaxosConfig;
    type Instance = InstanceId;
    type Observations = Observations;

    fn boot(
        id: NodeId,
        cluster: &Membership,
        config: &EpaxosConfig,
        recovered: Vec<Record>,
    ) -> Self {
        Epaxos::new(id, cluster, config.clone(), 0, recovered)
    }

    fn hash_state(&self, state: &mut FastHasher) {
        Epaxos::hash_state(self, state);
    }

    /// Execution waits on an uncommitted instance, or a recovery is under way.
    fn may_recover(&self) -> bool {
        self.replica.executor.has_blocked()
            || !self.recoveries.is_empty()
            || self.leader.drives_a_recovery()
    }

    /// Garbage collection is out of scope; its reports are lost on the way. Outside fair
    /// runs inquiries are lost too: the answer is the commit the leader (or whoever
    /// recovered the instance) broadcasts anyway.
    fn lost(message: &Message, fair: bool) -> bool {
        match message {
            Message::Executed { .. } => true,
            Message::Inquire { .. } => !fair,
            _ => false,
        }
    }

    fn recovers(message: &Message) -> Option<InstanceId> {
        match message {
            Message::Prepare { instance, .. } => Some(*instance),
            _ => None,
        }
    }
}
