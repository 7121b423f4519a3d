//! Peer and client links over QUIC.
//!
//! ```text
//!  frame     length-delimited postcard frames with a size limit
//!  hello     magic + wire version + instance opening every peer stream
//!  wan       WanSocket: in-process WAN delay emulation under quinn
//!  link      peer links: dial, hello handshake (instances), redial with backoff, read
//!  peers     the peer set: configured, added by membership changes, removed
//!  throttle  refusals logged once per interval
//!  endpoint  the endpoint, accept loop, per-peer queues, client request streams
//!  tagged    client protocol 4: many tagged requests per client stream
//! ```

pub mod endpoint;
pub mod frame;
pub mod hello;
pub mod link;
pub(crate) mod peers;
pub(crate) mod tagged;
pub mod throttle;
pub mod wan;
