//! Pieces every protocol's check uses: the two conflicting requests, the answers
//! clients received, and the relative order of the two requests.

use crate::command::{Command, CommandResult};
use crate::id::{ClientId, NodeId, RequestId};
use crate::request::ClientRequest;
use std::collections::BTreeMap;

/// Two clients compare-and-set the same absent key, at `a` and at `b`: whichever runs
/// first wins, so a disagreement on their order shows in the results too.
pub(crate) fn conflicting_cas(a: NodeId, b: NodeId) -> Vec<(NodeId, ClientRequest)> {
    let cas = |client: u64, value: &str| {
        ClientRequest::new(
            RequestId {
                client: ClientId(client),
                seq: 1,
            },
            Command::Cas {
                key: b"k".to_vec(),
                expected: None,
                new: value.as_bytes().to_vec(),
            },
        )
    };
    vec![(a, cas(1, "a")), (b, cas(2, "b"))]
}

/// Answers clients received: a request answered twice must be answered alike.
#[derive(Clone, Debug, Default, Hash)]
pub(crate) struct Replies(BTreeMap<RequestId, CommandResult>);

impl Replies {
    pub(crate) fn record(&mut self, id: RequestId, result: &CommandResult) -> Result<(), String> {
        match self.0.get(&id) {
            Some(earlier) if earlier != result => Err(format!(
                "{id} answered twice, differently: {earlier:?} then {result:?}"
            )),
            Some(_) => Ok(()),
            None => {
                self.0.insert(id, result.clone());
                Ok(())
            }
        }
    }

    pub(crate) fn get(&self, id: &RequestId) -> Option<&CommandResult> {
        self.0.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The explored requests, and whether the first ran before the second once a replica
/// ran both: every replica must agree.
#[derive(Clone, Debug, Hash)]
pub(crate) struct PairOrder {
    requests: Vec<RequestId>,
    first_runs_first: Option<bool>,
}

impl PairOrder {
    pub(crate) fn new(requests: &[(NodeId, ClientRequest)]) -> Self {
        Self {
            requests: requests.iter().map(|(_, r)| r.id).collect(),
            first_runs_first: None,
        }
    }

    /// An empty position per request, for [`check`](Self::check).
    pub(crate) fn positions(&self) -> Vec<Option<usize>> {
        vec![None; self.requests.len()]
    }

    /// Note that `request` ran at `position` of a replica's execution.
    pub(crate) fn note(
        &self,
        positions: &mut [Option<usize>],
        request: RequestId,
        position: usize,
    ) {
        if let Some(i) = self.requests.iter().position(|r| *r == request) {
            positions[i] = Some(position);
        }
    }

    /// `node` ran the requests at these positions.
    pub(crate) fn check(
        &mut self,
        node: NodeId,
        positions: &[Option<usize>],
    ) -> Result<(), String> {
        let [Some(first), Some(second)] = positions[..] else {
            return Ok(());
        };
        let order = first < second;
        match self.first_runs_first {
            Some(agreed) if agreed != order => Err(format!(
                "execution order: {node} runs {} {} {}, another replica the other way",
                self.requests[0],
                if order { "before" } else { "after" },
                self.requests[1]
            )),
            Some(_) => Ok(()),
            None => {
                self.first_runs_first = Some(order);
                Ok(())
            }
        }
    }
}
