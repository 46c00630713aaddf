//! RTP and RTCP (RFC 3550): packet views, writers and receiver statistics.
//! Sans-IO: no sockets, no clocks.

pub mod jitter;
pub mod packet;
pub mod receiver;
pub mod rtcp;

pub use packet::{RtpError, RtpPacket};
