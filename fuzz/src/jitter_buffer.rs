//! Drives the RTP jitter buffer with an arbitrary script of pushes, polls
//! and flushes, checking its invariants after every step and that what it
//! releases is contiguous in sequence order between discontinuities.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use camgate::rtp::jitter::{JitterBuffer, JitterConfig, Released};
use camgate::rtp::RtpPacket;

/// One scripted step.
#[derive(Arbitrary, Debug)]
enum Op {
    /// A packet arrives `advance_ms` after the previous step.
    Push {
        /// Added to the previous sequence number (1 is in order; 0 a
        /// duplicate; small negative values reorder; large ones jump).
        seq_delta: i16,
        /// Picks one of four SSRCs (a change is a discontinuity).
        ssrc: u8,
        /// Added to the previous RTP timestamp.
        ts_delta: u16,
        advance_ms: u16,
        /// Whether `poll` is drained afterwards, as callers must.
        drain: bool,
    },
    /// A timer fires `advance_ms` after the previous step.
    Poll { advance_ms: u16 },
    /// End of session.
    Flush,
}

/// The buffer's configuration, then the steps.
#[derive(Arbitrary, Debug)]
struct Script {
    latency_ms: u16,
    max_packets: u8,
    ops: Vec<Op>,
}

/// Follows the outputs: contiguity and counters.
#[derive(Default)]
struct Checker {
    /// Where the next output must start, unless unknown.
    expected: Option<u16>,
    /// Packets released so far.
    released: u64,
    /// Losses declared so far (including undrained outputs the buffer dropped).
    lost: u64,
}

impl Checker {
    fn drain(&mut self, jb: &mut JitterBuffer, now: Instant) {
        while let Some(r) = jb.poll(now) {
            jb.check_invariants();
            let lost_here = match r {
                Released::Lost { count, .. } => u64::from(count),
                _ => 0,
            };
            if jb.stats().lost != self.lost + lost_here {
                // Undrained outputs were dropped: continuity restarts.
                assert!(jb.stats().lost > self.lost + lost_here);
                self.lost = jb.stats().lost - lost_here;
                self.expected = None;
            }
            match r {
                Released::Packet(p) => {
                    assert_eq!(self.expected.unwrap_or(p.sequence), p.sequence);
                    self.expected = Some(p.sequence.wrapping_add(1));
                    self.released += 1;
                }
                Released::Lost { first_seq, count } => {
                    assert!(count >= 1);
                    assert_eq!(self.expected.unwrap_or(first_seq), first_seq);
                    self.expected = Some(first_seq.wrapping_add(count as u16));
                    self.lost += u64::from(count);
                }
                Released::Discontinuity => self.expected = None,
            }
            assert_eq!(jb.stats().released, self.released);
            assert_eq!(jb.stats().lost, self.lost);
        }
        if let Some(t) = jb.poll_timeout() {
            assert!(t > now, "poll_timeout in the past after draining");
        }
    }
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `Script` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(script) =
        <Script as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    let config = JitterConfig {
        latency: Duration::from_millis(script.latency_ms.into()),
        max_packets: script.max_packets.into(),
    };
    let mut jb = JitterBuffer::new(config, 90_000);
    let mut c = Checker::default();
    let mut now = Instant::now();
    let (mut seq, mut ts) = (0u16, 0u32);
    for op in &script.ops {
        match *op {
            Op::Push {
                seq_delta,
                ssrc,
                ts_delta,
                advance_ms,
                drain,
            } => {
                now += Duration::from_millis(advance_ms.into());
                seq = seq.wrapping_add_signed(seq_delta);
                ts = ts.wrapping_add(ts_delta.into());
                let mut raw = Vec::with_capacity(13);
                RtpPacket::write(&mut raw, false, 96, seq, ts, u32::from(ssrc % 4), b"x");
                let pkt = RtpPacket::parse(Bytes::from(raw)).expect("written packet parses");
                jb.push(pkt, now);
                jb.check_invariants();
                if drain {
                    c.drain(&mut jb, now);
                }
            }
            Op::Poll { advance_ms } => {
                now += Duration::from_millis(advance_ms.into());
                c.drain(&mut jb, now);
            }
            Op::Flush => {
                jb.flush();
                jb.check_invariants();
                c.drain(&mut jb, now);
                assert_eq!(jb.poll_timeout(), None);
            }
        }
    }
    let stats = jb.stats();
    assert!(stats.duplicates + stats.late <= stats.received);
    assert!(stats.jitter.is_finite() && stats.jitter >= 0.0);
}
