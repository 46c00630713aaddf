//! Where camera media goes: plain RTP to configured consumers (and, later,
//! WebRTC viewers).

pub mod rtp;
