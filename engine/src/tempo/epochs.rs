//! Configuration epochs and the range of timestamps each owns
//! (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe).
//!
//! Epoch `e` owns the timestamps `(t_{e-1}, t_e]` on every key, where `t_e` is the
//! timestamp of the switch that closed it; the current epoch owns everything above the
//! last switch. A command runs only if its timestamp falls in the range of the epoch it
//! was started in. Replicated state: every replica applies the same switches at the same
//! timestamps, so every replica holds the same ranges. A value type: it imports nothing of
//! the folder.
//!
//! Configuration epochs are not the incarnation epochs of `fence.rs` and `dots.rs` (a
//! replica's number after a lost disk).

use crate::configuration::{ChangeError, Configuration, ProposedChange};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};

/// One configuration and the timestamp that closed its range (`None`: the current one).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Range {
    configuration: Configuration,
    closed_at: Option<u64>,
}

/// Every configuration since epoch 0, in order, each with its range's upper end.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Epochs {
    ranges: Vec<Range>,
}

/// One epoch's range of timestamps: `(low, high]`, `high` open for the current epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span<'a> {
    /// The epoch's configuration.
    pub configuration: &'a Configuration,
    /// Exclusive lower end.
    pub low: u64,
    /// Inclusive upper end (`None`: no switch closed it yet).
    pub high: Option<u64>,
}

impl Epochs {
    /// Epoch 0 is `initial`, owning every timestamp until a switch closes it.
    pub fn new(initial: Configuration) -> Self {
        Self {
            ranges: vec![Range {
                configuration: initial,
                closed_at: None,
            }],
        }
    }

    /// The current configuration.
    pub fn current(&self) -> &Configuration {
        &self.last().configuration
    }

    /// The configuration of `epoch`, if this replica knows it.
    pub fn get(&self, epoch: u64) -> Option<&Configuration> {
        let first = self.ranges.first()?.configuration.epoch();
        let index = usize::try_from(epoch.checked_sub(first)?).ok()?;
        self.ranges.get(index).map(|r| &r.configuration)
    }

    /// Whether `id` votes in the current configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.current().counts_vote(id)
    }

    /// Every replica that is or was a member of a known configuration.
    pub fn ever_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.ranges
            .iter()
            .flat_map(|r| r.configuration.members().iter().map(|m| m.id))
    }

    /// Every configuration since epoch 0, in order.
    pub fn configurations(&self) -> Vec<Configuration> {
        self.ranges
            .iter()
            .map(|r| r.configuration.clone())
            .collect()
    }

    /// Every closed range `(epoch, timestamp of the switch that closed it)`, in order.
    pub fn closed(&self) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .filter_map(|r| Some((r.configuration.epoch(), r.closed_at?)))
            .collect()
    }

    /// The timestamp of the last switch that applied (0: none): every range up to it is
    /// closed.
    pub(super) fn closed_up_to(&self) -> u64 {
        self.ranges
            .iter()
            .rev()
            .find_map(|r| r.closed_at)
            .unwrap_or(0)
    }

    /// The ranges from the one holding `ts` on, in order.
    pub(super) fn spans_from(&self, ts: u64) -> impl Iterator<Item = Span<'_>> {
        let spans = self.ranges.iter().scan(0u64, |low, range| {
            let span = Span {
                configuration: &range.configuration,
                low: *low,
                high: range.closed_at,
            };
            *low = range.closed_at.unwrap_or(u64::MAX);
            Some(span)
        });
        spans.skip_while(move |span| span.high.is_some_and(|high| high < ts))
    }

    /// The range holding `ts`.
    pub(super) fn span_at(&self, ts: u64) -> Span<'_> {
        let mut spans = self.spans_from(ts);
        match spans.next() {
            Some(span) => span,
            // Unreachable: the last range is open.
            None => Span {
                configuration: self.current(),
                low: 0,
                high: None,
            },
        }
    }

    /// Whether a command started in `epoch` with timestamp `ts` runs (its timestamp lies in
    /// its epoch's range), given every switch up to `ts` is applied here.
    pub(super) fn runs(&self, epoch: u64, ts: u64) -> bool {
        self.span_at(ts).configuration.epoch() == epoch
    }

    /// A switch executed with timestamp `ts`: apply `change` if it names the current
    /// epoch and applies to it, closing the current range at `ts`.
    pub fn apply(
        &mut self,
        change: &ProposedChange,
        ts: u64,
    ) -> Result<&Configuration, ChangeError> {
        let next = self.current().apply(change)?;
        let last = self.ranges.len() - 1;
        self.ranges[last].closed_at = Some(ts);
        self.ranges.push(Range {
            configuration: next,
            closed_at: None,
        });
        Ok(self.current())
    }

    fn last(&self) -> &Range {
        // Never empty: `new` makes one and nothing removes any.
        &self.ranges[self.ranges.len() - 1]
    }
}

#[cfg(test)]
#[path = "epochs_test.rs"]
mod tests;
