//! Reads without the log (docs/design.md#reads-without-the-log): leader leases, read
//! indexes, follower reads, quorum leases and bounded staleness.
//!
//! ```text
//!  read at level ─▶ leader, lease held        → index = commit point   (LeaderLease)
//!                   leader, no lease          → round of heartbeats    (ReadIndex)
//!                   holder of a quorum lease  → local, key not busy    (QuorumLease)
//!                   other replica             → ReadIndexRequest ─▶ leader ─▶ index (Follower)
//!                   stale:B                   → freshness proof ≤ B, or TooStale
//!  every input ─▶ serve every read whose index is executed here
//! ```
//! The index of a read is one past the highest slot the leader knows committed when the
//! read reached it (not its contiguous commit point: a slot committed above a gap may
//! have answered its client at a replica that had the slots below), and never below the
//! end of the slots the leader took over (they may hold writes a former leader already
//! answered). A replica serves once it executed every slot below the index.

use super::lease::{HeldLease, Waiter};
use super::messages::{Ballot, Message, Slot};
use super::{MultiPaxos, Role, Timer};
use crate::command::{CommandResult, Key};
use crate::id::{NodeId, RequestId};
use crate::request::Response;
use crate::request::{ClientReply, ClientRequest, Consistency, ReadReceipt, RequestError};
use crate::time::Time;

/// Reads one replica holds at most; more are rejected.
const MAX_PENDING_READS: usize = 10_000;

/// Where a read this replica took stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ReadState {
    /// No index yet and nobody asked (no leader known, or retrying).
    Unsent,
    /// Waiting for the leader's answer (this replica, when it leads).
    Asked(NodeId),
    /// Serve once every slot below `index` is executed.
    Ready {
        /// The read index.
        index: Slot,
        /// What will have served it.
        receipt: ReadReceipt,
    },
    /// Serve under this replica's quorum lease.
    QuorumLease,
}

/// A read this replica took from a client and has not answered.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    key: Key,
    level: Consistency,
    pub(super) state: ReadState,
    last_sent: Time,
    attempts: u32,
}

impl MultiPaxos {
    /// A client read at a level served outside the log.
    pub(super) fn on_read(&mut self, now: Time, request: ClientRequest) {
        let key = request.command.key().clone();
        if let Consistency::Stale { bound_us } = request.consistency {
            self.serve_stale(now, request.id, &key, bound_us);
            return;
        }
        if self.reads.contains_key(&request.id) {
            return;
        }
        if self.reads.len() >= MAX_PENDING_READS {
            self.metrics.incr("requests_rejected");
            self.outbox.reply(ClientReply {
                id: request.id,
                outcome: Err(RequestError::Rejected(
                    "too many reads pending at this replica".to_owned(),
                )),
            });
            return;
        }
        self.reads.insert(
            request.id,
            PendingRead {
                key,
                level: request.consistency,
                state: ReadState::Unsent,
                last_sent: now,
                attempts: 0,
            },
        );
        self.dispatch_read(now, request.id);
        self.serve_reads(now);
    }

    /// Find an index for a read, or the lease that serves it.
    fn dispatch_read(&mut self, now: Time, id: RequestId) {
        let Some(read) = self.reads.get_mut(&id) else {
            return;
        };
        read.attempts += 1;
        read.last_sent = now;
        if read.attempts > self.config.max_forward_attempts {
            self.reads.remove(&id);
            self.metrics.incr("reads_timed_out");
            self.outbox.reply(super::timed_out(id));
            return;
        }
        let level = read.level;
        let state = if let Role::Leader(leadership) = &mut self.role {
            let index = self.log.committed_end().max(leadership.read_floor);
            if level == Consistency::Lease && now < leadership.lease_until {
                ReadState::Ready {
                    index,
                    receipt: ReadReceipt::LeaderLease,
                }
            } else {
                self.join_round(now, Waiter::Local(id));
                ReadState::Asked(self.id)
            }
        } else if level == Consistency::Lease && self.quorum_lease_valid(now) {
            ReadState::QuorumLease
        } else {
            match self.leader_hint.filter(|&l| l != self.id) {
                Some(leader) => {
                    self.outbox
                        .send(leader, Message::ReadIndexRequest { request: id });
                    ReadState::Asked(leader)
                }
                None => ReadState::Unsent,
            }
        };
        if let Some(read) = self.reads.get_mut(&id) {
            read.state = state;
        }
        let due = now + self.config.forward_retry;
        let due = self
            .timers
            .deadline(Timer::Reads)
            .map_or(due, |d| d.min(due));
        self.timers.set(Timer::Reads, due);
    }

    /// The leader adds a waiter to the round sent now, or sends one.
    fn join_round(&mut self, now: Time, waiter: Waiter) {
        let round = match &self.role {
            Role::Leader(leadership) => leadership.rounds.sent_now(now),
            _ => return,
        };
        let round = match round {
            Some(round) => round,
            None => self.send_round(now),
        };
        if let Role::Leader(leadership) = &mut self.role {
            leadership
                .read_waiters
                .entry(round)
                .or_default()
                .push(waiter);
        }
        // A one-replica quorum confirms at once.
        self.confirm_if_done(round);
    }

    /// Reads whose wait is over are served; quorum-lease reads whose lease lapsed look
    /// for an index instead. Called after every input.
    pub(super) fn serve_reads(&mut self, now: Time) {
        self.leases.settle(self.log.next_execute());
        if self.reads.is_empty() {
            return;
        }
        let executed = self.log.next_execute();
        let lease = self
            .quorum_lease_valid(now)
            .then_some(self.leases.held)
            .flatten();
        let mut done = Vec::new();
        let mut redo = Vec::new();
        for (&id, read) in &self.reads {
            match &read.state {
                ReadState::Ready { index, receipt } if executed >= *index => {
                    done.push((id, receipt.clone()));
                }
                ReadState::QuorumLease => match lease {
                    None => redo.push(id),
                    Some(held) => {
                        if executed >= held.log_end && !self.key_busy(&read.key) {
                            done.push((id, ReadReceipt::QuorumLease));
                        }
                    }
                },
                _ => {}
            }
        }
        for (id, receipt) in done {
            let Some(read) = self.reads.remove(&id) else {
                continue;
            };
            self.metrics.incr(match receipt {
                ReadReceipt::LeaderLease => "reads_leader_lease",
                ReadReceipt::QuorumLease => "reads_quorum_lease",
                ReadReceipt::ReadIndex => "reads_read_index",
                ReadReceipt::Follower { .. } => "reads_follower",
                ReadReceipt::Stale { .. } | ReadReceipt::Local => "reads_stale",
            });
            let value = self.log.kv().read(&read.key).cloned();
            self.outbox.reply(ClientReply {
                id,
                outcome: Ok(Response::Read {
                    result: CommandResult::Value(value),
                    receipt,
                }),
            });
        }
        for id in redo {
            self.dispatch_read(now, id);
        }
    }

    /// Whether an accepted slot not yet executed here writes `key`.
    fn key_busy(&self, key: &Key) -> bool {
        (self.log.next_execute()..self.log.end()).any(|slot| {
            self.log.get(slot).is_some_and(|state| {
                state
                    .value
                    .iter()
                    .any(|p| !p.command.is_read() && p.command.key() == key)
            })
        })
    }

    /// Reads still waiting after `forward_retry` ask again (a lost request or reply, a
    /// leader that changed); after `max_forward_attempts` they time out.
    pub(super) fn retry_reads(&mut self, now: Time) {
        self.timers.cancel(Timer::Reads);
        let retry = self.config.forward_retry;
        let due: Vec<RequestId> = self
            .reads
            .iter()
            .filter(|(_, r)| now >= r.last_sent + retry)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.metrics.incr("read_retries");
            self.dispatch_read(now, id);
        }
        if let Some(earliest) = self.reads.values().map(|r| r.last_sent).min() {
            self.timers.set(Timer::Reads, earliest + retry);
        }
    }

    /// A new leader: reads that were waiting for an index ask it.
    pub(super) fn redirect_reads(&mut self, now: Time) {
        let waiting: Vec<RequestId> = self
            .reads
            .iter()
            .filter(|(_, r)| matches!(r.state, ReadState::Unsent | ReadState::Asked(_)))
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            self.dispatch_read(now, id);
        }
    }

    /// A replica asks us, the leader, for a read index.
    pub(super) fn on_read_index_request(&mut self, now: Time, from: NodeId, request: RequestId) {
        let Role::Leader(leadership) = &self.role else {
            // Its asker retries, with the leader it then believes in.
            self.drop_message(false);
            return;
        };
        if self.config.lease.is_some() && now < leadership.lease_until {
            let index = self.log.committed_end().max(leadership.read_floor);
            self.outbox.send(
                from,
                Message::ReadIndexReply {
                    request,
                    index,
                    leased: true,
                },
            );
            return;
        }
        self.join_round(now, Waiter::Remote(from, request));
    }

    /// The leader's read index for one of our reads.
    pub(super) fn on_read_index_reply(
        &mut self,
        now: Time,
        from: NodeId,
        request: RequestId,
        index: Slot,
        leased: bool,
    ) {
        let Some(read) = self.reads.get_mut(&request) else {
            self.drop_message(false);
            return;
        };
        if read.state != ReadState::Asked(from) {
            self.drop_message(false);
            return;
        }
        read.state = ReadState::Ready {
            index,
            receipt: ReadReceipt::Follower {
                leader: from,
                index,
                leased,
            },
        };
        self.known_commit_point = self.known_commit_point.max(index);
        self.request_catch_up(now, from, false);
        self.serve_reads(now);
    }

    /// A leader round `round` is confirmed: its waiters have their index.
    pub(super) fn release_waiters(&mut self, round: u64, index: Slot) {
        let Role::Leader(leadership) = &mut self.role else {
            return;
        };
        let later = leadership.read_waiters.split_off(&(round + 1));
        let released = std::mem::replace(&mut leadership.read_waiters, later);
        for waiter in released.into_values().flatten() {
            match waiter {
                Waiter::Local(id) => {
                    if let Some(read) = self.reads.get_mut(&id) {
                        read.state = ReadState::Ready {
                            index,
                            receipt: ReadReceipt::ReadIndex,
                        };
                    }
                }
                Waiter::Remote(to, request) => self.outbox.send(
                    to,
                    Message::ReadIndexReply {
                        request,
                        index,
                        leased: false,
                    },
                ),
            }
        }
    }

    /// A bounded-staleness read: served here if this replica's state is proven fresh
    /// within the bound, refused otherwise.
    fn serve_stale(&mut self, now: Time, id: RequestId, key: &Key, bound_us: u64) {
        self.leases.settle(self.log.next_execute());
        let outcome = match self.proven_age_us(now) {
            Some(age) if self.within_bound(age, bound_us) => {
                self.metrics.incr("reads_stale");
                Ok(Response::Read {
                    result: CommandResult::Value(self.log.kv().read(key).cloned()),
                    receipt: ReadReceipt::Stale { age_us: age },
                })
            }
            age => {
                self.metrics.incr("reads_too_stale");
                let detail = match age {
                    Some(age) => format!(
                        "its state was last proven up to date {}ms ago on its clock",
                        age / 1_000
                    ),
                    None => "its state was never proven up to date".to_owned(),
                };
                Err(RequestError::TooStale { bound_us, detail })
            }
        };
        self.outbox.reply(ClientReply { id, outcome });
    }

    /// Whether this replica holds a live quorum lease under the ballot it follows.
    pub(super) fn quorum_lease_valid(&self, now: Time) -> bool {
        !self.rejoining
            && !self.is_leader()
            && self
                .leases
                .held
                .is_some_and(|h| now < h.until && h.ballot == self.promised)
    }

    /// A quorum-lease holder's round: ask every peer for a grant under our ballot.
    pub(super) fn send_lease_request(&mut self, now: Time) {
        self.timers
            .set(Timer::QuorumLease, now + self.config.heartbeat_interval);
        if self.rejoining || self.is_leader() || self.leader_hint.is_none() {
            return;
        }
        let ballot = self.promised;
        let round =
            self.leases
                .rounds
                .open(self.id, ballot, now, 0, std::collections::BTreeMap::new());
        self.grant(now);
        self.broadcast(Message::LeaseRequest { ballot, round });
    }

    /// A holder asks us for a quorum-lease grant.
    pub(super) fn on_lease_request(&mut self, now: Time, from: NodeId, ballot: Ballot, round: u64) {
        if self.rejoining || self.config.lease.is_none() {
            self.drop_message(false);
            return;
        }
        if ballot < self.promised {
            self.nack(from);
            return;
        }
        if ballot > self.promised {
            // We have not promised it: grant nothing under a ballot we do not follow.
            self.drop_message(false);
            return;
        }
        self.grant(now);
        let until = now + self.config.lease.unwrap_or_default();
        let log_end = match &mut self.role {
            Role::Leader(leadership) if leadership.ballot == ballot => {
                let held = leadership.holders.entry(from).or_default();
                *held = (*held).max(until);
                Some(leadership.next_slot())
            }
            _ => None,
        };
        self.outbox.send(
            from,
            Message::LeaseGrant {
                ballot,
                round,
                log_end,
            },
        );
    }

    /// A grant for one of our quorum-lease rounds.
    pub(super) fn on_lease_grant(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        log_end: Option<Slot>,
    ) {
        let needed = self.quorums.phase2;
        let Some(done) =
            self.leases
                .rounds
                .vote(round, ballot, from, needed, Some(ballot.node), log_end)
        else {
            return;
        };
        if let (Some(until), Some(log_end)) = (self.lease_end(done.sent_at), done.log_end) {
            // A renewal of a lease still live under the same ballot keeps its log end:
            // the leader counted us as a holder without a gap, so every slot above the
            // first log end needed our vote to commit.
            let log_end = match self.leases.held {
                Some(old) if old.ballot == ballot && now < old.until => old.log_end,
                _ => log_end,
            };
            self.leases.held = Some(HeldLease {
                ballot,
                until,
                log_end,
            });
            self.metrics.incr("quorum_leases_renewed");
        }
        self.serve_reads(now);
    }
}
