//! RTSP 1.0 client (RFC 2326), sans-IO: messages, authentication, SDP
//! presentation, transport negotiation and the interleaved framer.
//!
//! The tokio driver in `camera` owns the socket; [`client::Client`] only
//! sees bytes and time.

pub mod auth;
pub mod client;
pub mod digest;
pub mod framer;
pub mod message;
pub mod sdp;
pub mod server;
pub mod transport;

pub use client::{Client, ClientConfig, ClientError, Event, StreamSetup, TransportRequest};
pub use sdp::{Presentation, StreamDesc};
