//! Where camera media goes: plain RTP to configured consumers, RTSP clients
//! (recorders, VMS), and WebRTC viewers over WHEP.

pub(crate) mod clock;
pub(crate) mod places;
pub mod rtp;
pub mod rtsp;
mod udp_batch;

pub mod webrtc;
