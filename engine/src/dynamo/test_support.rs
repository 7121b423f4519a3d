//! Dynamo views of the generic test host (`crate::test_host`) for scenario tests: fixed
//! link latency, a disk that syncs after a fixed delay (effects in `Persist` wait for it),
//! crashes that lose unsynced records, restarts from the durable log, and directional
//! link blocks.

use super::{Dynamo, DynamoConfig};
use crate::command::Command;
use crate::id::{NodeId, RequestId};
use crate::protocol::Membership;
use crate::request::{ClientRequest, Consistency, Level};
use crate::test_host::{self, Order};
use std::time::Duration;

/// A pumped Dynamo cluster.
pub(super) type Pump = test_host::Pump<Dynamo>;

/// The replicas of `cluster`: 1 ms links, 100 us syncs; each boot draws a fresh seed.
pub(super) fn new_pump(cluster: Membership, config: DynamoConfig, seed: u64) -> Pump {
    let n = cluster.len() as u16;
    let build: test_host::Build<Dynamo> = Box::new(move |id, incarnation, records| {
        let node_seed = seed ^ (u64::from(id.0) << 32) ^ (incarnation << 48);
        Dynamo::new(id, &cluster, config.clone(), node_seed, records)
    });
    let order = Order::Timed {
        latency: Duration::from_millis(1),
        fsync: Duration::from_micros(100),
    };
    Pump::new(n, seed, order, build)
}

/// Dynamo requests through a pumped cluster.
pub(super) trait DynamoPump {
    /// Send a request at `level` (with a causal `context`) to `node` now.
    fn kv(
        &mut self,
        node: NodeId,
        command: Command,
        level: Level,
        context: Vec<u8>,
        sloppy: Option<bool>,
    ) -> RequestId;
}

impl DynamoPump for Pump {
    fn kv(
        &mut self,
        node: NodeId,
        command: Command,
        level: Level,
        context: Vec<u8>,
        sloppy: Option<bool>,
    ) -> RequestId {
        let id = self.next_request_id();
        let request = ClientRequest {
            id,
            command,
            consistency: Consistency::Dynamo(level),
            context,
            sloppy,
            resend: false,
        };
        self.request(node, request);
        id
    }
}
