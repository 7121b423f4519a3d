//! The operator's plan in the simulator's membership suites (leaderless ones: EPaxos,
//! Dynamo): goals drawn from the seed, each resolved when it is due against the newest
//! configuration into who joins and who leaves, keeping three or four voting members; and
//! the tally of the changes an operator asked (the Multi-Paxos suite too).

use meridian_engine::configuration::{Change, ChangeOutcome, Configuration};
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

    /// Who joins and who leaves, keeping three or four members.
    fn resolve(&mut self, members: &[NodeId], outside: &[NodeId], goal: Goal) -> Active {
        let goal = match goal {
            Goal::Add if members.len() >= 4 => Goal::Remove,
            Goal::Remove if members.len() <= 3 => Goal::Replace,
            other => other,
        };
        let mut pick =
            |from: &[NodeId]| (!from.is_empty()).then(|| from[self.rng.gen_range(0..from.len())]);
        match goal {
            Goal::Add => Active {
                add: pick(outside),
                remove: None,
            },
            Goal::Remove => Active {
                add: None,
                remove: pick(members),
            },
            Goal::Replace => Active {
                add: pick(outside),
                remove: pick(members),
            },
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
                Err(_) => self.failed += 1,
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
