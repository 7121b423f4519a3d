//! Exhaustive small-scope model checking of a protocol core's recovery, shared by the
//! EPaxos (`epaxos/model_check/`) and Tempo (`tempo/model_check/`) checks.
//!
//! ```text
//!   explorer ──picks one move──▶ World: n cores behind a controlled host
//!     submit a request · deliver any in-flight message (overtaking older ones to the
//!     same replica costs a reordering) · drop one · fire the timer of a replica that
//!     may start or drive a recovery · sync pending records · crash a replica around
//!     its writes (restarting from its durable log, or staying down)
//!   after every move: the protocol's safety invariants (its Observe impl)
//!   at every leaf: a fair run on a reliable network with every timer, then liveness
//! ```
//! The cores are driven only through [`Protocol`]; what differs per protocol (how a core
//! is built and fingerprinted, which of its messages are out of scope, what starts a
//! recovery, the invariants) is the [`Subject`] and [`Observe`] impls. The search
//! (explore.rs) walks every schedule within a bound: a budget of reorderings, drops,
//! crashes and timer moves. Messages to one replica otherwise arrive in send order, and
//! replicas interleave freely. States are deduplicated by fingerprint.
//!
//! Why budgets and not just depth: a recovery needs some 15 moves, and the number of
//! states grows about 4.5 times per move of depth, but only 10 to 30 times per unit of
//! budget, and a unit is spent at any depth.

mod common;
mod explore;
mod scenario;
mod world;

pub(crate) use common::{conflicting_cas, PairOrder, Replies};
pub(crate) use explore::{explore, Bounds, Report};
pub(crate) use scenario::{Budget, Mutation, Scenario};
pub(crate) use world::FastHasher;

use crate::id::NodeId;
use crate::protocol::{Membership, Protocol};
use crate::request::ClientReply;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

/// A protocol core the explorer can drive.
pub(crate) trait Subject: Protocol + Clone + Sized {
    /// The core's options.
    type Config: Clone;
    /// What a recovery is about (statistics: recovering and competing schedules).
    type Instance: Copy + Ord + Debug;
    /// What the explorer has seen, and the invariants checked against it.
    type Observations: Observe<Self>;

    /// A replica of `cluster` rebuilt from its durable records.
    fn boot(
        id: NodeId,
        cluster: &Membership,
        config: &Self::Config,
        recovered: Vec<Self::Record>,
    ) -> Self;

    /// Hash everything that can influence the core's next moves.
    fn hash_state(&self, state: &mut FastHasher);

    /// Whether a timer of this core can start or drive a recovery.
    fn may_recover(&self) -> bool;

    /// Whether `message` is lost on its way: out of the scope of the check, or (outside
    /// fair runs, `fair` false) redundant with what is sent anyway.
    fn lost(message: &Self::Message, fair: bool) -> bool;

    /// The instance whose recovery `message` starts or drives, if it does.
    fn recovers(message: &Self::Message) -> Option<Self::Instance>;

    /// Whether the core has nothing left to do: a fair run ends once every live core is
    /// idle and the network is empty. By default, when no timer is set (a core whose
    /// timers run forever says what idle is).
    fn idle(&self) -> bool {
        self.poll_timeout().is_none()
    }
}

/// What the explorer has seen so far, and the invariants checked against it.
pub(crate) trait Observe<P: Subject>: Clone + Hash {
    fn new(scenario: &Scenario<P>) -> Self;

    /// Number of client answers so far.
    fn replies(&self) -> usize;

    /// Records of `at` became durable.
    fn on_durable(&mut self, at: NodeId, records: &[P::Record]) -> Result<(), String>;

    /// `from` sent `message` to a live peer (a revealed decision, for instance).
    fn on_send(&mut self, from: NodeId, message: &P::Message) -> Result<(), String>;

    /// A client got an answer from `from`, whose durable log is `durable` (newest first).
    fn on_reply<'a>(
        &mut self,
        from: NodeId,
        reply: &ClientReply,
        durable: impl Iterator<Item = &'a P::Record>,
    ) -> Result<(), String>
    where
        P::Record: 'a;

    /// Safety over every live replica (id, core, whether its host ever crashed).
    fn check_state(&mut self, cores: &[(NodeId, &P, bool)]) -> Result<(), String>;

    /// Liveness after a fair run.
    fn check_outcome(
        &self,
        scenario: &Scenario<P>,
        cores: &[(NodeId, &P, bool)],
        submitted: &dyn Fn(usize) -> bool,
    ) -> Result<(), String>;
}

/// Explore, print the coverage, and fail with the counterexample if there is one.
pub(crate) fn check<P: Subject>(name: &str, scenario: &Scenario<P>, bounds: &Bounds) -> Report
where
    P::Message: Hash,
    P::Record: Hash,
{
    let started = Instant::now();
    let (report, counterexample) = explore(scenario, bounds);
    println!(
        "{name}: {:?}: {} states, {} transitions, {} schedules ({} with a recovery, {} with \
         competing recoveries), {} liveness runs, {:.1?}",
        bounds.budget,
        report.states,
        report.transitions,
        report.schedules,
        report.recovering_schedules,
        report.competing_schedules,
        report.liveness_runs,
        started.elapsed()
    );
    if let Some(counterexample) = counterexample {
        panic!("{name}: {counterexample}");
    }
    if bounds.liveness {
        assert_eq!(report.liveness_runs, report.schedules, "{report:?}");
    }
    report
}
