//! The explored world: protocol cores behind a host whose every move the explorer picks.
//!
//! The host keeps the contract of `protocol.rs`: records of a `Persist` reach the durable
//! log before its effects are released, self-sends are delivered once released, and a
//! crash loses the volatile core and every record not yet synced. Right after an input
//! leaves records pending, the only moves are to sync them (group commit) or to crash
//! the replica with some of them on disk.
//!
//! States are cloned at every branch, so cores are shared until written
//! (copy-on-write) and the durable log is a shared persistent list.

use super::scenario::{Budget, Scenario};
use super::{Observe, Subject};
use crate::id::NodeId;
use crate::protocol::{Effect, Output, Protocol};
use crate::time::Time;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

/// Timer firings one timer move may chain while they change nothing anyone can see
/// (stall counters ticking towards recovery, for instance).
const SILENT_FIRINGS: usize = 8;

/// One move of the explorer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The client of request `i` sends it.
    Submit(usize),
    /// Deliver the in-flight message at this position (a reordering unless it is the
    /// oldest one to its destination).
    Deliver(usize),
    /// Lose the in-flight message at this position.
    Drop(usize),
    /// Fire the timer of a replica whose execution waits on an uncommitted instance or
    /// that is recovering one (time moves to its deadline). Leaders' retransmissions
    /// are left to the fair run: for safety a resent message is the original delivered
    /// late.
    Timer(NodeId),
    /// Make every pending record of the replica durable and release their effects.
    Sync(NodeId),
    /// Crash the replica with the first `synced` pending persists on disk, or (when
    /// `released`) once they all are and their effects went out; it restarts from its
    /// durable log at once, or never.
    Crash {
        node: NodeId,
        synced: usize,
        released: bool,
        restart: bool,
    },
}

struct Envelope<M> {
    digest: u64,
    from: NodeId,
    to: NodeId,
    message: Rc<M>,
}

impl<M> Clone for Envelope<M> {
    fn clone(&self) -> Self {
        Self {
            message: Rc::clone(&self.message),
            ..*self
        }
    }
}

#[derive(Clone)]
struct Pending<M, R> {
    digest: u64,
    records: Vec<R>,
    then: Vec<Effect<M>>,
}

/// An append-only log shared between the states that have it in common.
struct DurableLog<R> {
    last: Option<Rc<Link<R>>>,
    digest: u64,
}

impl<R> Clone for DurableLog<R> {
    fn clone(&self) -> Self {
        Self {
            last: self.last.clone(),
            digest: self.digest,
        }
    }
}

impl<R> Default for DurableLog<R> {
    fn default() -> Self {
        Self {
            last: None,
            digest: 0,
        }
    }
}

struct Link<R> {
    record: R,
    previous: Option<Rc<Link<R>>>,
}

impl<R: Clone + Hash> DurableLog<R> {
    fn push(&mut self, record: R) {
        self.digest = mix(self.digest, hash_of(&record));
        self.last = Some(Rc::new(Link {
            record,
            previous: self.last.take(),
        }));
    }

    /// Newest record first.
    fn iter(&self) -> impl Iterator<Item = &R> {
        std::iter::successors(self.last.as_deref(), |link| link.previous.as_deref())
            .map(|link| &link.record)
    }

    fn to_vec(&self) -> Vec<R> {
        let mut records: Vec<R> = self.iter().cloned().collect();
        records.reverse();
        records
    }
}

struct Host<P: Protocol> {
    /// `None`: crashed for good.
    core: Option<Rc<P>>,
    core_digest: u64,
    durable: DurableLog<P::Record>,
    pending: Vec<Pending<P::Message, P::Record>>,
    crashed: bool,
}

impl<P: Protocol> Clone for Host<P> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            core_digest: self.core_digest,
            durable: self.durable.clone(),
            pending: self.pending.clone(),
            crashed: self.crashed,
        }
    }
}

/// Everything the explorer branches over.
#[derive(Clone)]
pub(crate) struct World<P: Subject> {
    now: Time,
    hosts: Vec<Host<P>>,
    /// In-flight messages in send order, one copy of each (a resend of an undelivered
    /// message adds nothing).
    network: Vec<Envelope<P::Message>>,
    submitted: Vec<bool>,
    /// In a fair run (liveness): inquiries reach their leader.
    fair: bool,
    pub(crate) budget: Budget,
    pub(crate) observations: P::Observations,
    /// Who started or drove a recovery of each instance: statistics only, not part of
    /// the state.
    pub(crate) recoverers: BTreeMap<P::Instance, BTreeSet<NodeId>>,
}

impl<P: Subject> World<P>
where
    P::Message: Hash,
    P::Record: Hash,
{
    pub(crate) fn new(scenario: &Scenario<P>, budget: Budget) -> Self {
        let hosts = scenario
            .cluster
            .ids()
            .map(|id| {
                let core = P::boot(id, &scenario.cluster, &scenario.config, Vec::new());
                Host {
                    core_digest: core_digest(&core),
                    core: Some(Rc::new(core)),
                    durable: DurableLog::default(),
                    pending: Vec::new(),
                    crashed: false,
                }
            })
            .collect();
        Self {
            now: Time::ZERO,
            hosts,
            network: Vec::new(),
            submitted: vec![false; scenario.requests.len()],
            fair: false,
            budget,
            observations: P::Observations::new(scenario),
            recoverers: BTreeMap::new(),
        }
    }

    /// The moves available here. A replica with unsynced records blocks every other move.
    pub(crate) fn steps(&self, scenario: &Scenario<P>) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some((i, host)) = self
            .hosts
            .iter()
            .enumerate()
            .find(|(_, h)| !h.pending.is_empty())
        {
            let node = node(i);
            steps.push(Step::Sync(node));
            if self.may_crash(scenario, node) {
                let restarts = match scenario.restart {
                    Some(restart) => vec![restart],
                    None => vec![true, false],
                };
                for restart in restarts {
                    // Records are read again only by a restart.
                    let synced = if restart { host.pending.len() } else { 0 };
                    for synced in 0..=synced {
                        steps.push(Step::Crash {
                            node,
                            synced,
                            released: false,
                            restart,
                        });
                    }
                    steps.push(Step::Crash {
                        node,
                        synced: 0,
                        released: true,
                        restart,
                    });
                }
            }
            return steps;
        }
        if scenario.concurrent_start {
            if let Some(i) = self.submitted.iter().position(|sent| !sent) {
                return vec![Step::Submit(i)];
            }
        }
        steps.extend(
            (0..self.network.len())
                .filter(|&i| self.budget.reorders > 0 || !self.overtakes(i))
                .map(Step::Deliver),
        );
        for (i, &(at, _)) in scenario.requests.iter().enumerate() {
            if !self.submitted[i] && self.is_alive(at) {
                steps.push(Step::Submit(i));
            }
        }
        let timers_allowed = !(scenario.crash_first && self.budget.crashes > 0);
        if self.budget.timers > 0 && timers_allowed {
            for (i, host) in self.hosts.iter().enumerate() {
                if host.core.as_deref().is_some_and(P::may_recover) {
                    steps.push(Step::Timer(node(i)));
                }
            }
        }
        if self.budget.drops > 0 {
            steps.extend((0..self.network.len()).map(Step::Drop));
        }
        steps
    }

    /// A line for counterexample traces (call before [`apply`](Self::apply)).
    pub(crate) fn describe(&self, scenario: &Scenario<P>, step: Step) -> String {
        match step {
            Step::Submit(i) => {
                let (at, request) = &scenario.requests[i];
                format!("client {} sends {:?} to {at}", request.id, request.command)
            }
            Step::Deliver(i) | Step::Drop(i) => {
                let e = &self.network[i];
                let verb = match step {
                    Step::Drop(_) => "drop",
                    _ if self.overtakes(i) => "deliver (out of order)",
                    _ => "deliver",
                };
                format!("{verb} {} -> {}: {:?}", e.from, e.to, e.message)
            }
            Step::Timer(node) => format!("timer at {node} (now {})", self.now),
            Step::Sync(node) => format!("sync {node}"),
            Step::Crash {
                node,
                synced,
                released,
                restart,
            } => {
                let pending = self.hosts[node.index()].pending.len();
                let when = if released {
                    format!("after its {pending} pending persists are durable and sent")
                } else {
                    format!("losing {} of {pending} pending persists", pending - synced)
                };
                let how = if restart { "restarts" } else { "stays down" };
                format!("crash {node} {when}, {how}")
            }
        }
    }

    /// Make a move; `Err` names the invariant it broke.
    pub(crate) fn apply(&mut self, scenario: &Scenario<P>, step: Step) -> Result<(), String> {
        match step {
            Step::Submit(i) => {
                self.submitted[i] = true;
                let (at, request) = scenario.requests[i].clone();
                let now = self.now;
                self.input(scenario, at, |core| core.handle_request(now, request))?;
            }
            Step::Deliver(i) => {
                if self.overtakes(i) {
                    self.budget.reorders -= 1;
                }
                let envelope = self.network.remove(i);
                let now = self.now;
                let message = Rc::unwrap_or_clone(envelope.message);
                self.input(scenario, envelope.to, |core| {
                    core.handle_message(now, envelope.from, message)
                })?;
            }
            Step::Drop(i) => {
                self.budget.drops -= 1;
                self.network.remove(i);
            }
            Step::Timer(node) => {
                self.budget.timers -= 1;
                self.fire_timer(scenario, node)?;
            }
            Step::Sync(node) => self.sync(scenario, node)?,
            Step::Crash {
                node,
                synced,
                released,
                restart,
            } => {
                self.budget.crashes -= 1;
                if released {
                    self.sync(scenario, node)?;
                }
                self.crash(scenario, node, synced, restart)?;
            }
        }
        self.settle(scenario)?;
        self.check_state()
    }

    fn check_state(&mut self) -> Result<(), String> {
        let cores = live_cores(&self.hosts);
        self.observations.check_state(&cores)
    }

    /// Syncing is the only move after an input of a replica that cannot crash: do it now.
    fn settle(&mut self, scenario: &Scenario<P>) -> Result<(), String> {
        while let Some(i) = (0..self.hosts.len())
            .find(|&i| !self.hosts[i].pending.is_empty() && !self.may_crash(scenario, node(i)))
        {
            self.sync(scenario, node(i))?;
        }
        Ok(())
    }

    fn may_crash(&self, scenario: &Scenario<P>, at: NodeId) -> bool {
        self.budget.crashes > 0 && scenario.crashable.contains(&at)
    }

    /// Feed one input to `at`, then drain its outputs and deliver its self-sends.
    fn input(
        &mut self,
        scenario: &Scenario<P>,
        at: NodeId,
        input: impl FnOnce(&mut P),
    ) -> Result<(), String> {
        let Some(core) = self.hosts[at.index()].core.as_mut() else {
            return Ok(());
        };
        input(Rc::make_mut(core));
        let mut local = VecDeque::new();
        self.drain(scenario, at, &mut local)?;
        self.deliver_local(scenario, at, local)?;
        self.refresh_digest(at);
        Ok(())
    }

    fn deliver_local(
        &mut self,
        scenario: &Scenario<P>,
        at: NodeId,
        mut local: VecDeque<P::Message>,
    ) -> Result<(), String> {
        let now = self.now;
        while let Some(message) = local.pop_front() {
            let Some(core) = self.hosts[at.index()].core.as_mut() else {
                return Ok(());
            };
            Rc::make_mut(core).handle_message(now, at, message);
            self.drain(scenario, at, &mut local)?;
        }
        Ok(())
    }

    /// Take every output of `at`: records wait for a sync, effects of `Now` go out.
    fn drain(
        &mut self,
        scenario: &Scenario<P>,
        at: NodeId,
        local: &mut VecDeque<P::Message>,
    ) -> Result<(), String> {
        loop {
            let Some(core) = self.hosts[at.index()].core.as_mut() else {
                return Ok(());
            };
            let Some(output) = Rc::make_mut(core).poll_output() else {
                return Ok(());
            };
            match output {
                Output::Now(effect) => self.release(scenario, at, effect, local)?,
                Output::Persist { records, then } => {
                    let digest = hash_of(&(&records, &then));
                    self.hosts[at.index()].pending.push(Pending {
                        digest,
                        records,
                        then,
                    });
                }
                Output::Compact { .. } => return Err(format!("{at} compacted its log")),
            }
        }
    }

    fn release(
        &mut self,
        scenario: &Scenario<P>,
        from: NodeId,
        effect: Effect<P::Message>,
        local: &mut VecDeque<P::Message>,
    ) -> Result<(), String> {
        match effect {
            Effect::Send { to, message } if to == from => local.push_back(message),
            Effect::Send { to, mut message } => {
                if P::lost(&message, self.fair) || !self.is_alive(to) {
                    return Ok(());
                }
                if let Some(instance) = P::recovers(&message) {
                    self.recoverers.entry(instance).or_default().insert(from);
                }
                self.observations.on_send(from, &message)?;
                if let Some(mutate) = scenario.mutation {
                    mutate(&mut message);
                }
                let digest = hash_of(&(from, to, &message));
                if self.network.iter().all(|e| e.digest != digest) {
                    self.network.push(Envelope {
                        digest,
                        from,
                        to,
                        message: Rc::new(message),
                    });
                }
            }
            Effect::Reply(reply) => {
                let durable = &self.hosts[from.index()].durable;
                self.observations.on_reply(from, &reply, durable.iter())?;
            }
            Effect::Committed { .. } => {}
        }
        Ok(())
    }

    fn sync(&mut self, scenario: &Scenario<P>, at: NodeId) -> Result<(), String> {
        let host = &mut self.hosts[at.index()];
        let batch = std::mem::take(&mut host.pending);
        for pending in &batch {
            for record in &pending.records {
                host.durable.push(record.clone());
            }
            self.observations.on_durable(at, &pending.records)?;
        }
        let mut local = VecDeque::new();
        for pending in batch {
            for effect in pending.then {
                self.release(scenario, at, effect, &mut local)?;
            }
        }
        self.deliver_local(scenario, at, local)?;
        self.refresh_digest(at);
        Ok(())
    }

    /// A restarted core resumes its unfinished instances at once (its timer is due).
    fn crash(
        &mut self,
        scenario: &Scenario<P>,
        at: NodeId,
        synced: usize,
        restart: bool,
    ) -> Result<(), String> {
        let host = &mut self.hosts[at.index()];
        let pending = std::mem::take(&mut host.pending);
        for kept in pending.into_iter().take(synced) {
            self.observations.on_durable(at, &kept.records)?;
            for record in kept.records {
                host.durable.push(record);
            }
        }
        host.crashed = true;
        host.core = restart.then(|| {
            Rc::new(P::boot(
                at,
                &scenario.cluster,
                &scenario.config,
                host.durable.to_vec(),
            ))
        });
        self.refresh_digest(at);
        if !restart {
            self.network.retain(|e| e.to != at);
            return Ok(());
        }
        let now = self.now;
        self.input(scenario, at, |core| core.handle_timeout(now))
    }

    /// Fire `at`'s timer, and again while the firings produce nothing new.
    fn fire_timer(&mut self, scenario: &Scenario<P>, at: NodeId) -> Result<(), String> {
        for _ in 0..SILENT_FIRINGS {
            let Some(core) = self.hosts[at.index()].core.as_ref() else {
                return Ok(());
            };
            let Some(deadline) = core.poll_timeout() else {
                return Ok(());
            };
            self.now = self.now.max(deadline);
            let before = (self.network.len(), self.observations.replies());
            let now = self.now;
            self.input(scenario, at, |core| core.handle_timeout(now))?;
            let quiet = self.hosts[at.index()].pending.is_empty()
                && (self.network.len(), self.observations.replies()) == before;
            if !quiet {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Deliver everything, sync everything and fire timers in a fixed fair order until
    /// every core is idle; false if that takes more than `max_steps`, or a core that is
    /// not idle has no timer set.
    pub(crate) fn run_fairly(
        &mut self,
        scenario: &Scenario<P>,
        max_steps: usize,
    ) -> Result<bool, String> {
        self.budget = Budget::NONE;
        self.fair = true;
        for _ in 0..max_steps {
            self.settle(scenario)?;
            let unsent = (0..self.submitted.len())
                .find(|&i| !self.submitted[i] && self.is_alive(scenario.requests[i].0));
            let step = if let Some(i) = unsent {
                Step::Submit(i)
            } else if !self.network.is_empty() {
                Step::Deliver(0)
            } else {
                let cores = || self.hosts.iter().filter_map(|h| h.core.as_deref());
                if cores().all(P::idle) {
                    return Ok(true);
                }
                let next_timer = self
                    .hosts
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| Some((h.core.as_ref()?.poll_timeout()?, i)))
                    .min();
                let Some((deadline, i)) = next_timer else {
                    return Ok(false);
                };
                self.now = self.now.max(deadline);
                let now = self.now;
                self.input(scenario, node(i), |core| core.handle_timeout(now))?;
                self.settle(scenario)?;
                self.check_state()?;
                continue;
            };
            self.apply(scenario, step)?;
        }
        Ok(false)
    }

    /// Whether delivering message `i` now overtakes an older one to the same replica.
    fn overtakes(&self, i: usize) -> bool {
        let to = self.network[i].to;
        self.network[..i].iter().any(|e| e.to == to)
    }

    fn is_alive(&self, id: NodeId) -> bool {
        self.hosts[id.index()].core.is_some()
    }

    fn refresh_digest(&mut self, at: NodeId) {
        let host = &mut self.hosts[at.index()];
        host.core_digest = host.core.as_deref().map_or(u64::MAX, core_digest);
    }

    /// Live cores by id, and whether each one's host ever crashed.
    pub(crate) fn cores(&self) -> Vec<(NodeId, &P, bool)> {
        live_cores(&self.hosts)
    }

    /// Whether a client request was sent.
    pub(crate) fn was_submitted(&self, i: usize) -> bool {
        self.submitted[i]
    }

    /// Identifies the state: equal fingerprints behave the same from here on.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut hasher = FastHasher::default();
        self.now.hash(&mut hasher);
        self.budget.hash(&mut hasher);
        self.submitted.hash(&mut hasher);
        for host in &self.hosts {
            hasher.write_u64(host.core_digest);
            hasher.write_u64(host.durable.digest);
            host.crashed.hash(&mut hasher);
            for pending in &host.pending {
                hasher.write_u64(pending.digest);
            }
        }
        // Only the order of messages to the same replica matters (see `overtakes`).
        for to in 0..self.hosts.len() {
            hasher.write_u64(u64::MAX);
            for envelope in self.network.iter().filter(|e| e.to.index() == to) {
                hasher.write_u64(envelope.digest);
            }
        }
        self.observations.hash(&mut hasher);
        hasher.finish()
    }
}

fn live_cores<P: Subject>(hosts: &[Host<P>]) -> Vec<(NodeId, &P, bool)> {
    hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((node(i), h.core.as_deref()?, h.crashed)))
        .collect()
}

fn node(index: usize) -> NodeId {
    NodeId(u16::try_from(index).unwrap_or(u16::MAX))
}

/// Every field of a core that can influence what it does next.
fn core_digest<P: Subject>(core: &P) -> u64 {
    let mut hasher = FastHasher::default();
    core.hash_state(&mut hasher);
    hasher.finish()
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = FastHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

fn mix(a: u64, b: u64) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write_u64(a);
    hasher.write_u64(b);
    hasher.finish()
}

/// Multiply-rotate hashing (the Fx scheme): fingerprints are computed for every state,
/// and 64 bits make a collision among a few million states unlikely.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn write_u16(&mut self, word: u16) {
        self.write_u64(u64::from(word));
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}
