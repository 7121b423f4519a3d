//! Peer and client links over QUIC.
//!
//! ```text
//!  frame     length-delimited postcard frames with a size limit
//!  hello     magic + wire version opening every peer stream
//!  wan       WanSocket: in-process WAN delay emulation under quinn
//!  endpoint  one QUIC connection per peer pair; client request streams
//! ```

pub mod endpoint;
pub mod frame;
pub mod hello;
pub mod wan;
