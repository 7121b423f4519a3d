//! Protocol-specific inputs to a running simulation (an operator's membership change, a
//! query that needs `&mut`): call the core of a node at its own clock, then drain it like
//! any other input.

use super::Sim;
use crate::id::NodeId;
use crate::protocol::Protocol;
use crate::time::Time;

impl<P: Protocol> Sim<P> {
    /// Call `f` on the core of `node` with the node's clock reading, then handle its
    /// outputs as after any input. `None` if the node is down (or unknown).
    pub fn with_node<R>(&mut self, node: NodeId, f: impl FnOnce(&mut P, Time) -> R) -> Option<R> {
        let now = self.local_now(node);
        let core = self.nodes.get_mut(node.index())?.core.as_mut()?;
        let result = f(core, now);
        self.drain(node);
        Some(result)
    }
}
