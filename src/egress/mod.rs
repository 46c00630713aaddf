//! Where camera media goes: plain RTP to configured consumers, and WebRTC
//! viewers over WHEP.

pub mod rtp;
pub mod webrtc;
