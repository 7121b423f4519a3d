//! Tempo as the explorer's subject: how a core is built and fingerprinted, which of its
//! messages are out of scope, and what starts a recovery.

use super::observations::Observations;
use crate::id::NodeId;
use crate::model_check::{FastHasher, Subject};
use crate::protocol::Membership;
use crate::tempo::coordinator::Stage;
use crate::tempo::replica::Replica;
use crate::tempo::{Dot, Message, Record, Tempo, TempoConfig};
use std::hash::Hash;

impl Subject for Tempo {
    type Config = TempoConfig;
    type Instance = Dot;
    type Observations = Observations;

    fn boot(
        id: NodeId,
        cluster: &Membership,
        config: &TempoConfig,
        recovered: Vec<Record>,
    ) -> Self {
        Tempo::new(id, cluster, config.clone(), 0, recovered)
    }

    /// Every field is named, so a new one does not compile until its place here is
    /// decided.
    fn hash_state(&self, state: &mut FastHasher) {
        let Self {
            replica,
            drives,
            collector,
            timers,
            last_resend,
            last_compaction,
            // Empty unless a disk was lost (out of the model checker's scope).
            rejoin: _,
        } = self;
        let Replica {
            // Fixed at construction: the same in every state of a given replica.
            id: _,
            cluster: _,
            config: _,
            // Taken from the executor's configurations.
            members: _,
            fast_quorum: _,
            suspected,
            pending_changes,
            change_outcomes,
            abandoned,
            removed,
            cmds,
            clocks,
            promises,
            floors,
            executor,
            clients,
            // When own commands committed: metrics only.
            committed_at: _,
            touched,
            waiting_heads,
            collected,
            fence,
            // Empty between moves: the host drains it after every input.
            outbox,
            // Counters only: nothing reads them back.
            metrics: _,
        } = replica;
        debug_assert!(outbox.is_empty(), "fingerprint of an undrained core");
        (
            cmds,
            clocks,
            promises,
            executor,
            clients,
            touched,
            waiting_heads,
            collected,
            fence,
        )
            .hash(state);
        (pending_changes, change_outcomes, abandoned, removed, floors).hash(state);
        // Who it proposes to next.
        suspected.hash(state);
        (drives, collector, timers, last_resend, last_compaction).hash(state);
    }

    /// A command known here and not committed that is not driven here, or driven by a
    /// recovery (own proposals are retransmitted in the fair run).
    fn may_recover(&self) -> bool {
        let (r, drives) = (&self.replica, &self.drives);
        r.cmds.iter().any(|(dot, cmd)| {
            cmd.decided.is_none()
                && cmd.payload.is_some()
                && drives
                    .map
                    .get(dot)
                    .is_none_or(|d| matches!(d.stage, Stage::Recover { .. }))
        })
    }

    /// Garbage collection is out of scope; its reports are lost on the way. Outside fair
    /// runs promise announcements are lost too: the search is about timestamps and
    /// recovery; stability and execution order are checked in the fair runs, from every
    /// state the search reaches.
    fn lost(message: &Message, fair: bool) -> bool {
        match message {
            Message::Executed { .. } => true,
            Message::Promises { .. } | Message::AskPromises { .. } => !fair,
            _ => false,
        }
    }

    fn recovers(message: &Message) -> Option<Dot> {
        match message {
            Message::Rec { dot, .. } => Some(*dot),
            _ => None,
        }
    }

    /// Nothing driven, every known command committed, durable and executed.
    fn idle(&self) -> bool {
        let r = &self.replica;
        self.drives.map.is_empty()
            && r.executor.backlog() == 0
            && r.cmds
                .iter()
                .all(|(&dot, cmd)| cmd.durable && r.executor.executed.contains(dot))
    }
}
