//! Which UDP datagrams a session takes, sans-IO: RTP and RTCP only from the
//! camera (its address, and the `server_port`s of its SETUP answer when it
//! gave them, RFC 2326 section 12.39), and no more bytes per second than
//! the TCP path allows ([`crate::rtsp::client::MAX_INGEST_BYTES_PER_SEC`]
//! over [`crate::rtsp::client::INGEST_WINDOW`]).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::rtsp::client::{INGEST_WINDOW, MAX_INGEST_BYTES_PER_SEC};
use crate::rtsp::ClientError;

/// Rejected datagrams are logged at most this often.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Whether a datagram is taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// From the camera, within the byte cap.
    Accept,
    /// From someone else: dropped and counted. `log` is true for the first
    /// of each [`REJECT_LOG_INTERVAL`], carrying how many were rejected
    /// since the last log line.
    Reject { log: Option<u64> },
    /// The camera sent more than the cap: the session ends.
    Flood(ClientError),
}

/// The UDP gate of one session.
#[derive(Debug)]
pub(super) struct UdpIngest {
    /// The camera's address (of its RTSP connection).
    camera: IpAddr,
    /// Per stream: the camera's RTP and RTCP ports, once SETUP named them.
    ports: Vec<Option<(u16, u16)>>,
    /// Start of the current byte window and the bytes taken in it.
    window: Option<(Instant, u64)>,
    /// When a rejection was last logged, and rejections since.
    reject_log: (Option<Instant>, u64),
}

impl UdpIngest {
    /// Takes datagrams from `camera` only, for `streams` streams.
    pub fn new(camera: IpAddr, streams: usize) -> Self {
        UdpIngest {
            camera,
            ports: vec![None; streams],
            window: None,
            reject_log: (None, 0),
        }
    }

    /// The camera's `server_port` pair for `stream`, from its SETUP answer:
    /// from now on only those ports are taken for that stream.
    pub fn set_server_ports(&mut self, stream: usize, rtp: u16, rtcp: u16) {
        if let Some(p) = self.ports.get_mut(stream) {
            *p = Some((rtp, rtcp));
        }
    }

    /// Judges a datagram of `len` bytes for `stream` (RTP when `rtp`) from
    /// `from`, arriving at `now`.
    pub fn check(
        &mut self,
        stream: usize,
        rtp: bool,
        from: SocketAddr,
        len: usize,
        now: Instant,
    ) -> Verdict {
        // IPv4-mapped IPv6 sources compare as IPv4.
        let ip = match from.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let port_ok = match self.ports.get(stream).copied().flatten() {
            Some((p_rtp, p_rtcp)) => from.port() == if rtp { p_rtp } else { p_rtcp },
            None => true,
        };
        if ip != self.camera || !port_ok {
            return self.reject(now);
        }
        let (start, bytes) = match self.window {
            Some((start, bytes)) if now.saturating_duration_since(start) < INGEST_WINDOW => {
                (start, bytes)
            }
            _ => (now, 0),
        };
        let bytes = bytes + len as u64;
        self.window = Some((start, bytes));
        if bytes > MAX_INGEST_BYTES_PER_SEC * INGEST_WINDOW.as_secs() {
            return Verdict::Flood(ClientError::Flood {
                mib: bytes >> 20,
                secs: INGEST_WINDOW.as_secs(),
                limit_mib: MAX_INGEST_BYTES_PER_SEC >> 20,
            });
        }
        Verdict::Accept
    }

    fn reject(&mut self, now: Instant) -> Verdict {
        let (last, count) = &mut self.reject_log;
        *count += 1;
        let due = last.is_none_or(|t| now.saturating_duration_since(t) >= REJECT_LOG_INTERVAL);
        if !due {
            return Verdict::Reject { log: None };
        }
        *last = Some(now);
        let n = std::mem::take(count);
        Verdict::Reject { log: Some(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMERA: [u8; 4] = [192, 0, 2, 10];

    fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
        (ip, port).into()
    }

    #[test]
    fn only_the_camera_address_before_setup_ports() {
        let t0 = Instant::now();
        let mut g = UdpIngest::new(CAMERA.into(), 2);
        assert_eq!(
            g.check(0, true, addr(CAMERA, 7000), 100, t0),
            Verdict::Accept
        );
        assert_eq!(g.check(1, false, addr(CAMERA, 1), 100, t0), Verdict::Accept);
        assert!(matches!(
            g.check(0, true, addr([192, 0, 2, 66], 7000), 100, t0),
            Verdict::Reject { .. }
        ));
        // An IPv4-mapped IPv6 source is the same camera.
        let mapped: SocketAddr = "[::ffff:192.0.2.10]:7000".parse().unwrap();
        assert_eq!(g.check(0, true, mapped, 100, t0), Verdict::Accept);
    }

    #[test]
    fn only_the_server_ports_once_known() {
        let t0 = Instant::now();
        let mut g = UdpIngest::new(CAMERA.into(), 2);
        g.set_server_ports(0, 6970, 6971);
        assert_eq!(
            g.check(0, true, addr(CAMERA, 6970), 100, t0),
            Verdict::Accept
        );
        assert_eq!(
            g.check(0, false, addr(CAMERA, 6971), 100, t0),
            Verdict::Accept
        );
        assert!(matches!(
            g.check(0, true, addr(CAMERA, 6971), 1, t0),
            Verdict::Reject { .. }
        ));
        assert!(matches!(
            g.check(0, false, addr(CAMERA, 40000), 1, t0),
            Verdict::Reject { .. }
        ));
        // The other stream has no ports yet: any from the camera.
        assert_eq!(
            g.check(1, true, addr(CAMERA, 40000), 100, t0),
            Verdict::Accept
        );
        // Out-of-range stream indexes are not a panic.
        g.set_server_ports(9, 1, 2);
        assert_eq!(g.check(9, true, addr(CAMERA, 5), 1, t0), Verdict::Accept);
    }

    #[test]
    fn rejections_are_logged_at_most_every_interval_with_their_count() {
        let t0 = Instant::now();
        let mut g = UdpIngest::new(CAMERA.into(), 1);
        let stranger = addr([10, 0, 0, 1], 5000);
        let mut logs = Vec::new();
        for i in 0..2500u64 {
            let now = t0 + Duration::from_millis(10 * i);
            if let Verdict::Reject { log: Some(n) } = g.check(0, true, stranger, 100, now) {
                logs.push((now - t0, n));
            }
        }
        assert_eq!(
            logs,
            [
                (Duration::ZERO, 1),
                (Duration::from_secs(10), 1000),
                (Duration::from_secs(20), 1000)
            ]
        );
    }

    #[test]
    fn the_byte_cap_is_the_tcp_one() {
        let t0 = Instant::now();
        let mut g = UdpIngest::new(CAMERA.into(), 1);
        let cap = MAX_INGEST_BYTES_PER_SEC * INGEST_WINDOW.as_secs();
        let datagram = 60_000u64;
        let fits = cap / datagram;
        for _ in 0..fits {
            assert_eq!(
                g.check(0, true, addr(CAMERA, 1), datagram as usize, t0),
                Verdict::Accept
            );
        }
        assert!(matches!(
            g.check(0, true, addr(CAMERA, 1), datagram as usize, t0),
            Verdict::Flood(ClientError::Flood { .. })
        ));
        // A new window starts afresh.
        let mut g = UdpIngest::new(CAMERA.into(), 1);
        for _ in 0..fits {
            g.check(0, true, addr(CAMERA, 1), datagram as usize, t0);
        }
        let later = t0 + INGEST_WINDOW;
        assert_eq!(
            g.check(0, true, addr(CAMERA, 1), datagram as usize, later),
            Verdict::Accept
        );
        // Rejected datagrams do not count against the camera.
        let mut g = UdpIngest::new(CAMERA.into(), 1);
        for _ in 0..fits * 2 {
            g.check(0, true, addr([10, 0, 0, 1], 1), datagram as usize, t0);
        }
        assert_eq!(g.check(0, true, addr(CAMERA, 1), 1, t0), Verdict::Accept);
    }
}
