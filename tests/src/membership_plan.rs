//! The operator's plan in the simulator's membership suites (leaderless ones: EPaxos,
//! Tempo, Dynamo): goals drawn from the seed, each resolved when it is due against the
//! newest configuration into who joins and who leaves, keeping three or four voting
//! members; the tally of the changes an operator asked (the Multi-Paxos suite too); and
//! the operator of the leaderless consensus suites, which carries the plan out.

use meridian_engine::configuration::{Change, ChangeOutcome, Configuration, Role};
use meridian_engine::sim::Sim;
use meridian_engine::{NodeId, Protocol, RequestId, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Duration;

/// What the operator wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// A spare joins (with four members already: a removal instead).
    Add,
    /// A member leaves (with three members: a replace instead).
    Remove,
    /// A spare joins, then a member leaves.
    Replace,
}

/// One of `from`, drawn from `rng` (none from none).
fn pick(rng: &mut ChaCha8Rng, from: &[NodeId]) -> Option<NodeId> {
    (!from.is_empty()).then(|| from[rng.gen_range(0..from.len())])
}

/// A goal in progress: who joins, who leaves.
#[derive(Clone, Copy, Debug)]
pub struct Active {
    /// Still to join.
    pub add: Option<NodeId>,
    /// Still to leave.
    pub remove: Option<NodeId>,
}

/// Goals drawn from the seed and the one in progress.
pub struct Plan {
    /// Draws the goals, then picks who joins and leaves (and whatever else the suite
    /// draws, e.g. whom to ask).
    pub rng: ChaCha8Rng,
    /// Goals not started, by the time they are due.
    pub goals: VecDeque<(Time, Goal)>,
    /// Goals drawn.
    pub planned: usize,
    /// The goal in progress.
    pub active: Option<Active>,
    /// Goals carried out.
    pub done: Vec<String>,
}

impl Plan {
    /// `count` goals (drawn from the range) due at times drawn in `[0, within)`, from
    /// `seed` salted by `salt` (each suite its own).
    pub fn draw(seed: u64, salt: u64, count: RangeInclusive<usize>, within: Time) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt);
        let count = rng.gen_range(count);
        let mut goals: Vec<(Time, Goal)> = (0..count)
            .map(|_| {
                let at = Time::from_micros(rng.gen_range(0..within.as_micros()));
                let goal = [Goal::Add, Goal::Remove, Goal::Replace][rng.gen_range(0..3)];
                (at, goal)
            })
            .collect();
        goals.sort_by_key(|(at, _)| *at);
        Self {
            rng,
            planned: goals.len(),
            goals: goals.into(),
            active: None,
            done: Vec::new(),
        }
    }

    /// Every goal carried out.
    pub fn finished(&self) -> bool {
        self.goals.is_empty() && self.active.is_none()
    }

    /// The goal in progress, starting the next one if it is due at `now` (resolved
    /// against the current `members` and the replicas `outside` them).
    pub fn current(
        &mut self,
        now: Time,
        members: &[NodeId],
        outside: &[NodeId],
    ) -> Option<&mut Active> {
        if self.active.is_none() {
            let &(at, goal) = self.goals.front()?;
            if now < at {
                return None;
            }
            self.goals.pop_front();
            self.active = Some(self.resolve(members, outside, goal));
        }
        self.active.as_mut()
    }

    /// The goal in progress is carried out.
    pub fn finish(&mut self) {
        if let Some(active) = self.active.take() {
            self.done.push(format!("{active:?}"));
        }
    }

    /// The bare removal in progress met three voters (it was resolved against an older
    /// configuration): as a goal resolved now, a spare joins first, or with none the
    /// members stay and the goal ends.
    fn join_before_removal(&mut self, outside: &[NodeId]) {
        match pick(&mut self.rng, outside) {
            Some(spare) => {
                if let Some(active) = self.active.as_mut() {
                    active.add = Some(spare);
                }
            }
            None => self.finish(),
        }
    }

    /// Who joins and who leaves, keeping three or four members.
    fn resolve(&mut self, members: &[NodeId], outside: &[NodeId], goal: Goal) -> Active {
        let goal = match goal {
            Goal::Add if members.len() >= 4 => Goal::Remove,
            Goal::Remove if members.len() <= 3 => Goal::Replace,
            other => other,
        };
        let mut pick = |from: &[NodeId]| pick(&mut self.rng, from);
        match goal {
            Goal::Add => Active {
                add: pick(outside),
                remove: None,
            },
            Goal::Remove => Active {
                add: None,
                remove: pick(members),
            },
            Goal::Replace => {
                let add = pick(outside);
                // No spare left (the removed ones were retired): leave the members be
                // rather than drop below three.
                let remove = match add.is_some() || members.len() >= 4 {
                    true => pick(members),
                    false => None,
                };
                Active { add, remove }
            }
        }
    }
}

/// The change last asked of a replica, and how the changes asked so far ended.
#[derive(Default)]
pub struct Tally {
    /// Asked of `node` as `request` at `since`, not answered yet.
    pub asked: Option<(NodeId, RequestId, Time)>,
    /// Changes answered as applied.
    pub applied: usize,
    /// Changes answered otherwise.
    pub failed: usize,
    /// Why the last change answered otherwise failed.
    pub last_failure: Option<String>,
}

impl Tally {
    /// Take the answer to the change last asked, if it came; true while the operator
    /// should keep waiting (no answer within `patience`: the replica may have crashed and
    /// forgotten the request, so the operator looks again).
    pub fn waiting<P: Protocol>(&mut self, sim: &mut Sim<P>, patience: Duration) -> bool {
        let Some((node, request, since)) = self.asked else {
            return false;
        };
        match sim.with_node(node, |core, _| core.poll_change_outcome()) {
            Some(Some(ChangeOutcome { request: r, result })) if r == request => match result {
                Ok(_) => self.applied += 1,
                Err(why) => {
                    self.failed += 1;
                    self.last_failure = Some(why.to_string());
                }
            },
            Some(None) if sim.now() < since + patience => return true,
            _ => {}
        }
        self.asked = None;
        false
    }

    /// Ask `node` for `change` as `request` now, if it is up.
    pub fn ask<P: Protocol>(
        &mut self,
        sim: &mut Sim<P>,
        node: NodeId,
        request: RequestId,
        change: Change,
    ) {
        let now = sim.now();
        if sim
            .with_node(node, |core, at| core.propose_change(at, request, change))
            .is_some()
        {
            self.asked = Some((node, request, now));
        }
    }
}

/// Every voter of `last`, the newest configuration, reached its epoch (`epoch_of`: the
/// epoch a node is at, `None` if it is down); panics naming the seed and `replay`.
pub fn assert_voters_reached(
    last: &Configuration,
    epoch_of: impl Fn(NodeId) -> Option<u64>,
    seed: u64,
    replay: &str,
) {
    for voter in last.voters() {
        assert_eq!(
            epoch_of(voter),
            Some(last.epoch()),
            "seed {seed}: voter {voter} of epoch {} is not there\n  replay: {replay}",
            last.epoch()
        );
    }
}

/// The operator of the leaderless consensus suites (EPaxos, Tempo): the plan drawn from
/// the seed, carried out one change at a time from the newest configuration a live
/// replica executed, through a live voter of it. A spare is added as a learner and
/// promoted once it fetched its peers' state (metric `rejoining` back to 0).
pub struct Operator {
    /// The goals.
    pub plan: Plan,
    /// How the changes asked ended.
    pub tally: Tally,
    next_seq: u64,
    patience: Duration,
    /// Stop a removed replica for good once a live replica executed its removal, as an
    /// operator's `cluster remove` does; it is never added again.
    retire_removed: bool,
    /// Removed, to be retired on the next tick.
    to_retire: Option<NodeId>,
    /// With `retire_removed`, the newest configuration seen: the replica that executed a
    /// removal first may be the one retired, and the next goal must not be resolved
    /// against the older configuration the others still run.
    newest_seen: Option<Configuration>,
}

impl Operator {
    /// Goals drawn from `seed` (salted by `salt`) within `chaos`; an answer not come
    /// within `patience` is asked again (the replica asked may have crashed and
    /// forgotten the request).
    pub fn new(seed: u64, salt: u64, chaos: Duration, patience: Duration) -> Self {
        Self {
            plan: Plan::draw(seed, salt, 2..=4, Time::ZERO + chaos),
            tally: Tally::default(),
            next_seq: 0,
            patience,
            retire_removed: false,
            to_retire: None,
            newest_seen: None,
        }
    }

    /// Stop every replica it removes for good (`Sim::retire`), never adding it again.
    pub fn retiring_removed(mut self) -> Self {
        self.retire_removed = true;
        self
    }

    /// Every goal was carried out by the end of the run (liveness), and every voter of
    /// the newest configuration reached it; panics naming the seed and `replay`.
    pub fn assert_done<P: Protocol>(&self, sim: &Sim<P>, seed: u64, replay: &str) {
        assert!(
            self.plan.finished(),
            "seed {seed}: liveness: membership goals left after the heal: {:?} (active {:?}, done {:?}, last failure {:?})\n  replay: {replay}",
            self.plan.goals,
            self.plan.active,
            self.plan.done,
            self.tally.last_failure
        );
        let last = Self::configuration(sim).expect("a live replica");
        let epoch_of = |id| {
            sim.node(id)
                .and_then(|n| n.configuration())
                .map(|c| c.epoch())
        };
        assert_voters_reached(&last, epoch_of, seed, replay);
    }

    /// The newest configuration any live replica has executed.
    pub fn configuration<P: Protocol>(sim: &Sim<P>) -> Option<Configuration> {
        sim.live_nodes()
            .filter_map(|(_, node)| node.configuration())
            .max_by_key(Configuration::epoch)
    }

    /// On the operator's tick: take an answer, or ask the next change.
    pub fn tick<P: Protocol>(&mut self, sim: &mut Sim<P>) {
        if let Some(removed) = self.to_retire.take() {
            sim.retire(removed);
        }
        if self.tally.waiting(sim, self.patience) {
            return;
        }
        let Some(mut configuration) = Self::configuration(sim) else {
            return;
        };
        if self.retire_removed {
            match &self.newest_seen {
                Some(seen) if seen.epoch() > configuration.epoch() => configuration = seen.clone(),
                _ => self.newest_seen = Some(configuration.clone()),
            }
        }
        let Some(change) = self.next_change(sim, &configuration) else {
            return;
        };
        let epoch = configuration.epoch();
        let asked: Vec<NodeId> = configuration
            .voters()
            .filter(|&id| {
                sim.node(id)
                    .and_then(|n| n.configuration())
                    .is_some_and(|c| c.epoch() == epoch)
            })
            .collect();
        if asked.is_empty() {
            return;
        }
        let target = asked[self.plan.rng.gen_range(0..asked.len())];
        self.next_seq += 1;
        let request = RequestId {
            client: meridian_engine::ClientId(1_000_000),
            seq: self.next_seq,
        };
        self.tally.ask(sim, target, request, change);
    }

    /// The change the goal in progress needs next in `configuration`, if any now.
    fn next_change<P: Protocol>(
        &mut self,
        sim: &Sim<P>,
        configuration: &Configuration,
    ) -> Option<Change> {
        let voters: Vec<NodeId> = configuration.voters().collect();
        let outside: Vec<NodeId> = sim
            .cluster()
            .ids()
            .filter(|&id| configuration.role_of(id) != Some(Role::Voter) && !sim.is_retired(id))
            .collect();
        let active = self.plan.current(sim.now(), &voters, &outside)?;
        let bare_removal = active.add.is_none()
            && active
                .remove
                .is_some_and(|y| configuration.role_of(y) == Some(Role::Voter));
        if bare_removal && voters.len() <= 3 {
            // Resolved against an older configuration than this one (without
            // `retire_removed`, the replica that had executed the newest may have crashed
            // since): a removal now would leave two voters and is refused every time
            // (t19 seed 60031).
            self.plan.join_before_removal(&outside);
        }
        let active = self.plan.active.as_mut()?;
        match (active.add, active.remove) {
            (Some(x), _) => match configuration.role_of(x) {
                None => Some(Change::AddLearner(sim.cluster().members[x.index()].clone())),
                // Promote once its peers' state arrived (it votes only then anyway).
                Some(Role::Learner) => {
                    let caught_up = sim
                        .node(x)
                        .is_some_and(|n| n.metrics().get("rejoining") == 0);
                    caught_up.then_some(Change::Promote(x))
                }
                Some(Role::Voter) => {
                    active.add = None;
                    None
                }
            },
            (None, Some(y)) if configuration.role_of(y).is_some() => Some(Change::Remove(y)),
            (None, removed) => {
                if self.retire_removed {
                    self.to_retire = removed;
                }
                self.plan.finish();
                None
            }
        }
    }
}

/// A membership suite's sums over its seeds: the operator's goals and changes, client
/// requests completed and with unknown outcome, and `N` counters of the suite's own.
pub struct Totals<const N: usize> {
    /// Membership goals planned.
    pub goals: usize,
    /// Changes applied.
    pub applied: usize,
    /// Changes answered otherwise.
    pub failed: usize,
    /// Client requests completed.
    pub ok: usize,
    /// Client requests with unknown outcome.
    pub unknown: usize,
    /// The suite's counters.
    pub counters: [u64; N],
}

impl<const N: usize> Default for Totals<N> {
    fn default() -> Self {
        Self {
            goals: 0,
            applied: 0,
            failed: 0,
            ok: 0,
            unknown: 0,
            counters: [0; N],
        }
    }
}

impl<const N: usize> Totals<N> {
    /// Add one seed's run: its operator, client outcomes `(completed, unknown)` and
    /// counters.
    pub fn add(&mut self, operator: &Operator, (ok, unknown): (usize, usize), counters: [u64; N]) {
        self.goals += operator.plan.planned;
        self.applied += operator.tally.applied;
        self.failed += operator.tally.failed;
        self.ok += ok;
        self.unknown += unknown;
        for (sum, seen) in self.counters.iter_mut().zip(counters) {
            *sum += seen;
        }
    }

    /// Print the sums and check that every goal was met; returns the counters.
    pub fn report(&self) -> [u64; N] {
        let Self {
            goals,
            applied,
            failed,
            ok,
            unknown,
            counters,
        } = self;
        println!(
            "{goals} membership goals, {applied} changes applied, {failed} answered otherwise"
        );
        println!("{ok} client requests completed, {unknown} with unknown outcome");
        assert!(
            applied >= goals,
            "{applied} changes applied for {goals} goals"
        );
        *counters
    }
}
