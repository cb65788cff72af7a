//! The signaling relay (server only): a socket-free core and the WebSocket shell around it.

pub mod cluster;
pub mod ice;
pub mod limits;
mod node;
pub mod queue;
pub mod registry;
pub mod ws;

pub use registry::{Action, ConnId, Registry, Timing};
pub use ws::{router, Hub, RelayConfig};
