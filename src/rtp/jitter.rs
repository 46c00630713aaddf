//! Per-stream RTP jitter buffer: reorders packets by sequence number within
//! a latency budget and reports losses, RFC 3550 A.8 interarrival jitter.
//!
//! Modeled on GStreamer rtpbin2's jitter buffer: every outcome is an explicit
//! value ([`Pushed`], [`Released`]) that maps one-to-one onto a counter in
//! [`JitterStats`], and sequence numbers are extended to 64 bits inside.
//! Sans-IO: time comes in as `now` arguments.
//!
//! Call order, per packet and per timer:
//! 1. [`JitterBuffer::push`] each received packet of the stream;
//! 2. drain [`JitterBuffer::poll`] until `None`, feeding each
//!    [`Released::Packet`] to the depacketizer;
//! 3. arm a timer at [`JitterBuffer::poll_timeout`]; when it fires, go to 2.
//!
//! At the end of the session call [`JitterBuffer::flush`], then drain `poll`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::RtpPacket;

/// Default [`JitterConfig::max_packets`].
pub const DEFAULT_MAX_PACKETS: usize = 1024;

/// Default [`JitterConfig::latency`] (GStreamer's rtpjitterbuffer default).
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(200);

/// A forward sequence jump beyond the highest number seen by more than this
/// is a restart of the sequence space, not loss (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u64 = 3000;

/// A packet up to this far behind the next expected sequence number is late
/// or a duplicate; further behind, it is a restart of the sequence space.
const MAX_MISORDER: u64 = 3000;

/// Largest distance kept between the next expected sequence number and the
/// highest one queued. Beyond it the head is forced out (counted as
/// overflow) so that every 16-bit number in the accepted window
/// `[next - MAX_MISORDER, highest + MAX_DROPOUT]` extends unambiguously
/// (the window must stay well under 2^15 either side of the highest).
const MAX_SPAN: u64 = 1 << 14;

/// Size of the ring that remembers, for the last sequence numbers passed,
/// whether each was released (a repeat is a duplicate) or declared lost (a
/// repeat is late). Must exceed `MAX_MISORDER`.
const HISTORY_BITS: usize = 4096;

/// Extended sequence number given to the first packet of a sequence space:
/// far enough from zero that the 2^15 backward reach never underflows.
const EXT_BASE: u64 = 1 << 16;

/// Settings of one jitter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterConfig {
    /// The network cache: how long a packet behind a gap may wait for the
    /// earlier missing ones before they are declared lost. Zero (for RTP
    /// over TCP, which never reorders) declares a gap lost as soon as a
    /// later packet arrives. Default 200 ms.
    pub latency: Duration,
    /// Most packets held; when a push would exceed it, the head is released
    /// early (gaps before it declared lost). Values below 1 act as 1.
    /// Default 1024.
    pub max_packets: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            latency: DEFAULT_LATENCY,
            max_packets: DEFAULT_MAX_PACKETS,
        }
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Held behind a gap (or a packet already waiting): released when the
    /// gap fills, when a deadline passes, or when overflow forces it out.
    Queued,
    /// The next expected packet: released by the next `poll` without waiting.
    Forward,
    /// Already queued or already released: dropped.
    Duplicate,
    /// Its sequence number was already declared lost (or precedes the start
    /// of the stream): dropped.
    Late,
    /// SSRC change, or a sequence jump of more than 3000 either way: all
    /// queued packets are released (gaps declared lost), then a
    /// [`Released::Discontinuity`], and the buffer restarts on this packet.
    Discontinuity,
}

/// One output of [`JitterBuffer::poll`], in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The next packet in sequence order: hand it to the depacketizer.
    Packet(RtpPacket),
    /// `count` sequence numbers starting at `first_seq` (wrapping) are given
    /// up: the deadline of a later packet passed, overflow forced them out,
    /// or the stream was flushed or restarted.
    Lost {
        /// First missing sequence number.
        first_seq: u16,
        /// How many consecutive sequence numbers are missing (at least 1).
        count: u32,
    },
    /// The packets that follow belong to a new SSRC or sequence space.
    Discontinuity,
}

/// Counters of one jitter buffer, each matching one outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Packets given to `push`.
    pub received: u64,
    /// Packets returned by `poll` as [`Released::Packet`].
    pub released: u64,
    /// Pushes answered [`Pushed::Duplicate`].
    pub duplicates: u64,
    /// Pushes answered [`Pushed::Late`].
    pub late: u64,
    /// Sequence numbers declared lost (sum of [`Released::Lost`] counts),
    /// plus outputs dropped because `poll` was not drained (see `poll`).
    pub lost: u64,
    /// Packets that arrived after a higher sequence number but in time to be
    /// released in order.
    pub reordered: u64,
    /// Packets released early because a bound forced it: `max_packets`, or
    /// a span of 16384 sequence numbers between the oldest gap and the
    /// highest packet queued.
    pub overflow: u64,
    /// Pushes answered [`Pushed::Discontinuity`].
    pub discontinuities: u64,
    /// RFC 3550 A.8 interarrival jitter of the current SSRC, in RTP
    /// timestamp units.
    pub jitter: f64,
}

/// A packet waiting in the queue.
#[derive(Debug)]
struct Entry {
    /// The packet itself, released as is.
    pkt: RtpPacket,
    /// `arrival + latency`, or `None` when that overflows `Instant` (never
    /// expires); its copy in `deadlines` orders the timer.
    deadline: Option<Instant>,
}

/// RFC 3550 A.8 state of the current SSRC.
#[derive(Debug)]
struct JitterEstimator {
    /// Arrival of the first packet: arrival times count from here.
    origin: Instant,
    /// Previous transit time (arrival minus RTP timestamp, in clock units),
    /// `None` right after a restart.
    last_transit: Option<u32>,
}

/// The sequence space the buffer is in, once a first packet arrived.
#[derive(Debug)]
struct Space {
    /// SSRC of the stream; a different one is a discontinuity.
    ssrc: u32,
    /// Extended sequence number of the next packet to release; everything
    /// below was released or declared lost.
    next: u64,
    /// Highest extended sequence number accepted; the reference for
    /// extending 16-bit numbers.
    highest: u64,
}

/// Reorders one RTP stream (one SSRC at a time) by sequence number.
///
/// Create it with [`JitterBuffer::new`], then follow the call order in the
/// module documentation. Never blocks, never panics on any input, and holds
/// at most `max_packets` packets (plus what one `poll` drain returns).
#[derive(Debug)]
pub struct JitterBuffer {
    /// Latency and bounds.
    config: JitterConfig,
    /// RTP clock rate of the stream, for jitter in timestamp units.
    clock_rate: u32,
    /// `None` until the first packet.
    space: Option<Space>,
    /// Packets waiting, by extended sequence number (all `>= space.next`).
    queue: BTreeMap<u64, Entry>,
    /// `(deadline, extended seq)` of every queued packet that has one: the
    /// earliest says when `poll` must give up on the gaps before it.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Outputs decided inside `push` or `flush` (restart, overflow), handed
    /// out by `poll` before anything in `queue`. Bounded by `out_cap`.
    out: VecDeque<Released>,
    /// One bit per extended sequence number, modulo `HISTORY_BITS`, for the
    /// numbers just below `space.next`: set if released, clear if lost.
    history: [u64; HISTORY_BITS / 64],
    /// Interarrival jitter state, `None` until the first packet.
    estimator: Option<JitterEstimator>,
    /// Latest `now` seen, for `poll_timeout` when output is ready already.
    last_now: Option<Instant>,
    /// Counters.
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates an empty buffer for a stream of `clock_rate` Hz (from the
    /// SDP `rtpmap`). Call once per RTP stream, before its first packet.
    pub fn new(config: JitterConfig, clock_rate: u32) -> Self {
        let config = JitterConfig {
            max_packets: config.max_packets.max(1),
            ..config
        };
        JitterBuffer {
            config,
            clock_rate,
            space: None,
            queue: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            out: VecDeque::new(),
            history: [0; HISTORY_BITS / 64],
            estimator: None,
            last_now: None,
            stats: JitterStats::default(),
        }
    }

    /// Feeds one packet received at `now`. Call for every RTP packet of the
    /// stream as it arrives, then drain [`JitterBuffer::poll`] until `None`.
    pub fn push(&mut self, pkt: RtpPacket, now: Instant) -> Pushed {
        self.see(now);
        self.stats.received += 1;
        let Some(space) = &self.space else {
            let ext = self.restart(&pkt, true, now);
            return self.insert(pkt, ext, now);
        };
        if pkt.ssrc != space.ssrc {
            return self.discontinuity(pkt, true, now);
        }
        let (next, highest) = (space.next, space.highest);
        let ext = extend(highest, pkt.sequence);
        if ext > highest + MAX_DROPOUT || ext + MAX_MISORDER < next {
            return self.discontinuity(pkt, false, now);
        }
        self.update_jitter(&pkt, now);
        if ext < next {
            return if self.was_released(ext) {
                self.stats.duplicates += 1;
                Pushed::Duplicate
            } else {
                self.stats.late += 1;
                Pushed::Late
            };
        }
        if self.queue.contains_key(&ext) {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        if ext < highest {
            self.stats.reordered += 1;
        }
        self.insert(pkt, ext, now)
    }

    /// Returns the next output at `now`, in sequence order, or `None` when
    /// nothing more can be released before [`JitterBuffer::poll_timeout`].
    /// Call until `None` after every `push`, after `flush`, and whenever the
    /// timeout passes.
    ///
    /// Outputs decided by `push` (restart, overflow) wait here; if a caller
    /// never drains them, the oldest beyond `2 * max_packets + 2` are
    /// dropped and counted in [`JitterStats::lost`].
    pub fn poll(&mut self, now: Instant) -> Option<Released> {
        self.see(now);
        if let Some(r) = self.out.pop_front() {
            self.count_handed_out(&r);
            return Some(r);
        }
        let space = self.space.as_mut()?;
        let (&head, _) = self.queue.first_key_value()?;
        if head != space.next {
            let expired = self.deadlines.first().is_some_and(|&(d, _)| d <= now);
            if !expired {
                return None;
            }
            let lost = self.declare_lost_until(head);
            self.count_handed_out(&lost);
            return Some(lost);
        }
        let pkt = self.release_head();
        self.stats.released += 1;
        Some(Released::Packet(pkt))
    }

    /// The instant at which `poll` will next release something, or `None`
    /// if nothing queued will be released by time alone. Ask after draining
    /// `poll` and arm a timer for it; if output is ready already (`poll` not
    /// drained), returns the latest `now` seen.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ready = !self.out.is_empty()
            || match (&self.space, self.queue.first_key_value()) {
                (Some(space), Some((&head, _))) => head == space.next,
                _ => false,
            };
        if ready {
            return self.last_now;
        }
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Gives up waiting: everything queued becomes ready for `poll` in
    /// order, gaps between packets declared lost. Call at the end of the
    /// session (or before dropping the buffer), then drain `poll`.
    pub fn flush(&mut self) {
        while !self.queue.is_empty() {
            self.force_head_out();
        }
    }

    /// The counters so far. Read whenever metrics are exported.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Panics if an internal invariant does not hold. For tests and fuzz
    /// targets: call after any step.
    pub fn check_invariants(&self) {
        assert!(
            self.queue.len() <= self.config.max_packets,
            "queue overflow"
        );
        assert!(self.out.len() <= self.out_cap(), "out overflow");
        let Some(space) = &self.space else {
            assert!(self.queue.is_empty() && self.deadlines.is_empty());
            return;
        };
        assert!(space.next <= space.highest + 1, "next beyond highest");
        assert!(space.next >= EXT_BASE, "next underflow");
        if let Some((&first, _)) = self.queue.first_key_value() {
            assert!(first >= space.next, "queued {first} already passed");
        }
        if let Some((&last, _)) = self.queue.last_key_value() {
            assert_eq!(last, space.highest, "highest not queued");
            assert!(last - space.next < MAX_SPAN, "span too wide");
        } else {
            assert_eq!(space.next, space.highest + 1, "empty but behind");
        }
        let mut with_deadline = 0;
        for (&ext, e) in &self.queue {
            assert_eq!(e.pkt.sequence, ext as u16, "wrong extension");
            assert_eq!(e.pkt.ssrc, space.ssrc, "foreign SSRC queued");
            if let Some(d) = e.deadline {
                assert!(self.deadlines.contains(&(d, ext)), "deadline missing");
                with_deadline += 1;
            }
        }
        assert_eq!(self.deadlines.len(), with_deadline, "stale deadline");
    }

    /// Starts a new sequence space on `pkt`; `new_source` (first packet or
    /// SSRC change) also restarts the jitter estimate.
    fn restart(&mut self, pkt: &RtpPacket, new_source: bool, now: Instant) -> u64 {
        let ext = EXT_BASE + u64::from(pkt.sequence);
        self.space = Some(Space {
            ssrc: pkt.ssrc,
            next: ext,
            highest: ext,
        });
        self.history = [0; HISTORY_BITS / 64];
        match &mut self.estimator {
            // Same SSRC, new sequence space: keep the estimate, but the
            // timestamps may have jumped too, so skip one difference.
            Some(e) if !new_source => e.last_transit = None,
            _ => {
                self.stats.jitter = 0.0;
                self.estimator = Some(JitterEstimator {
                    origin: now,
                    last_transit: None,
                });
            }
        }
        self.update_jitter(pkt, now);
        ext
    }

    /// Releases everything queued, marks the restart and starts over on
    /// `pkt`.
    fn discontinuity(&mut self, pkt: RtpPacket, new_source: bool, now: Instant) -> Pushed {
        self.stats.discontinuities += 1;
        self.flush();
        self.push_out(Released::Discontinuity);
        let ext = self.restart(&pkt, new_source, now);
        self.insert(pkt, ext, now);
        Pushed::Discontinuity
    }

    /// Queues `pkt` as `ext` (in the current space, at or after `next`, not
    /// queued yet), then enforces the bounds.
    fn insert(&mut self, pkt: RtpPacket, ext: u64, now: Instant) -> Pushed {
        let space = self.space.as_mut().expect("insert after restart");
        space.highest = space.highest.max(ext);
        let outcome = if ext == space.next {
            Pushed::Forward
        } else {
            Pushed::Queued
        };
        let deadline = now.checked_add(self.config.latency);
        if let Some(d) = deadline {
            self.deadlines.insert((d, ext));
        }
        self.queue.insert(ext, Entry { pkt, deadline });
        loop {
            let span_ok = match (&self.space, self.queue.last_key_value()) {
                (Some(space), Some((&last, _))) => last - space.next < MAX_SPAN,
                _ => true,
            };
            if span_ok && self.queue.len() <= self.config.max_packets {
                break;
            }
            self.stats.overflow += 1;
            self.force_head_out();
        }
        outcome
    }

    /// Moves the head of the queue to `out`, a `Lost` first if there is a
    /// gap before it.
    fn force_head_out(&mut self) {
        let (Some(space), Some((&head, _))) = (&self.space, self.queue.first_key_value()) else {
            return;
        };
        if head != space.next {
            let lost = self.declare_lost_until(head);
            self.push_out(lost);
        }
        let pkt = self.release_head();
        self.push_out(Released::Packet(pkt));
    }

    /// Declares `[next, until)` lost and advances `next` to `until`.
    fn declare_lost_until(&mut self, until: u64) -> Released {
        let space = self.space.as_mut().expect("lost within a space");
        let first = space.next;
        // The span bound keeps this below 2^14.
        let count = u32::try_from(until - first).unwrap_or(u32::MAX);
        space.next = until;
        if until - first >= HISTORY_BITS as u64 {
            self.history = [0; HISTORY_BITS / 64];
        } else {
            for ext in first..until {
                self.set_history(ext, false);
            }
        }
        Released::Lost {
            first_seq: first as u16,
            count,
        }
    }

    /// Removes the head of the queue, which must be `next`, and advances.
    fn release_head(&mut self) -> RtpPacket {
        let (ext, entry) = self
            .queue
            .pop_first()
            .expect("release from a non-empty queue");
        if let Some(d) = entry.deadline {
            self.deadlines.remove(&(d, ext));
        }
        let space = self.space.as_mut().expect("release within a space");
        debug_assert_eq!(ext, space.next);
        space.next = ext + 1;
        self.set_history(ext, true);
        entry.pkt
    }

    /// Most entries `out` keeps for a caller that does not drain `poll`: a
    /// restart of a full queue (a packet and a `Lost` each, one marker) fits.
    fn out_cap(&self) -> usize {
        2 * self.config.max_packets + 2
    }

    /// Appends to `out`. Beyond the cap (a caller not draining `poll`),
    /// drops the oldest packets and losses, counting them lost, but keeps
    /// the discontinuity markers (merging adjacent ones), so that what the
    /// caller eventually sees still says where sequence spaces change.
    fn push_out(&mut self, r: Released) {
        if r == Released::Discontinuity && self.out.back() == Some(&Released::Discontinuity) {
            return;
        }
        self.out.push_back(r);
        while self.out.len() > self.out_cap() {
            let Some(i) = self.out.iter().position(|r| *r != Released::Discontinuity) else {
                break;
            };
            match self.out.remove(i) {
                Some(Released::Packet(_)) => self.stats.lost += 1,
                Some(Released::Lost { count, .. }) => self.stats.lost += u64::from(count),
                Some(Released::Discontinuity) | None => {}
            }
            if i > 0 && self.out.get(i) == Some(&Released::Discontinuity) {
                self.out.remove(i);
            }
        }
    }

    /// Counts an output as it leaves `poll`.
    fn count_handed_out(&mut self, r: &Released) {
        match r {
            Released::Packet(_) => self.stats.released += 1,
            Released::Lost { count, .. } => self.stats.lost += u64::from(*count),
            Released::Discontinuity => {}
        }
    }

    /// Whether `ext`, just below `next`, was released (rather than lost).
    fn was_released(&self, ext: u64) -> bool {
        let i = (ext % HISTORY_BITS as u64) as usize;
        self.history[i / 64] & (1 << (i % 64)) != 0
    }

    /// Records whether `ext` was released or lost.
    fn set_history(&mut self, ext: u64, released: bool) {
        let i = (ext % HISTORY_BITS as u64) as usize;
        if released {
            self.history[i / 64] |= 1 << (i % 64);
        } else {
            self.history[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Records the latest time seen.
    fn see(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    /// RFC 3550 A.8: `J += (|D(i-1, i)| - J) / 16`, where `D` is the
    /// difference of transit times (arrival in clock units minus RTP
    /// timestamp) of consecutive arrivals.
    fn update_jitter(&mut self, pkt: &RtpPacket, now: Instant) {
        let Some(e) = &mut self.estimator else {
            return;
        };
        let elapsed = now.saturating_duration_since(e.origin);
        // Modulo 2^32 like the RTP timestamp; only differences matter.
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(pkt.timestamp);
        if let Some(last) = e.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            self.stats.jitter += (f64::from(d) - self.stats.jitter) / 16.0;
        }
        e.last_transit = Some(transit);
    }
}

/// The extended sequence number of `seq` nearest to `reference`.
fn extend(reference: u64, seq: u16) -> u64 {
    let delta = i64::from(seq.wrapping_sub(reference as u16) as i16);
    reference.wrapping_add_signed(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MS: Duration = Duration::from_millis(1);
    const LATENCY: Duration = Duration::from_millis(200);

    /// A packet with `seq`, timestamp `ts` and SSRC `ssrc`.
    fn pkt_full(seq: u16, ts: u32, ssrc: u32) -> RtpPacket {
        let mut raw = Vec::new();
        RtpPacket::write(&mut raw, false, 96, seq, ts, ssrc, b"x");
        RtpPacket::parse(Bytes::from(raw)).expect("written packet parses")
    }

    fn pkt(seq: u16) -> RtpPacket {
        pkt_full(seq, u32::from(seq) * 3000, 0x1234)
    }

    fn buffer(latency: Duration, max_packets: usize) -> JitterBuffer {
        JitterBuffer::new(
            JitterConfig {
                latency,
                max_packets,
            },
            90_000,
        )
    }

    /// An output with the packet reduced to its sequence number.
    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        P(u16),
        L(u16, u32),
        D,
    }

    /// Checks that outputs are contiguous in sequence order within a
    /// sequence space, and that the counters match what came out.
    #[derive(Default)]
    struct Checker {
        /// Sequence number the next output must start at, if known.
        expected: Option<u16>,
        /// Packets seen.
        released: u64,
        /// Sum of `Lost` counts seen.
        lost: u64,
    }

    impl Checker {
        fn see(&mut self, jb: &JitterBuffer, r: &Released) -> Out {
            if jb.stats().lost != self.lost + released_lost(r) {
                // Undrained outputs were dropped: continuity is broken.
                self.lost = jb.stats().lost - released_lost(r);
                self.expected = None;
            }
            let out = match r {
                Released::Packet(p) => {
                    assert_eq!(self.expected.unwrap_or(p.sequence), p.sequence, "{r:?}");
                    self.expected = Some(p.sequence.wrapping_add(1));
                    self.released += 1;
                    Out::P(p.sequence)
                }
                &Released::Lost { first_seq, count } => {
                    assert!(count >= 1);
                    assert_eq!(self.expected.unwrap_or(first_seq), first_seq, "{r:?}");
                    self.expected = Some(first_seq.wrapping_add(count as u16));
                    self.lost += u64::from(count);
                    Out::L(first_seq, count)
                }
                Released::Discontinuity => {
                    self.expected = None;
                    Out::D
                }
            };
            assert_eq!(jb.stats().released, self.released);
            assert_eq!(jb.stats().lost, self.lost);
            out
        }

        /// Drains `poll` at `now`, checking invariants after every step.
        fn drain(&mut self, jb: &mut JitterBuffer, now: Instant) -> Vec<Out> {
            let mut outs = Vec::new();
            while let Some(r) = jb.poll(now) {
                jb.check_invariants();
                outs.push(self.see(jb, &r));
            }
            jb.check_invariants();
            outs
        }
    }

    fn released_lost(r: &Released) -> u64 {
        match r {
            Released::Lost { count, .. } => u64::from(*count),
            _ => 0,
        }
    }

    /// Pushes then drains, returning the outcome and the outputs.
    fn step(
        jb: &mut JitterBuffer,
        c: &mut Checker,
        p: RtpPacket,
        now: Instant,
    ) -> (Pushed, Vec<Out>) {
        let pushed = jb.push(p, now);
        jb.check_invariants();
        (pushed, c.drain(jb, now))
    }

    #[test]
    fn in_order_passes_through_without_delay() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        for (i, seq) in (100..110).enumerate() {
            let now = t0 + MS * i as u32;
            assert_eq!(
                step(&mut jb, &mut c, pkt(seq), now),
                (Pushed::Forward, vec![Out::P(seq)])
            );
            assert_eq!(jb.poll_timeout(), None);
        }
        let s = jb.stats();
        assert_eq!(
            (s.received, s.released, s.lost, s.reordered),
            (10, 10, 0, 0)
        );
    }

    #[test]
    fn reorder_within_latency_is_recovered() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        assert_eq!(step(&mut jb, &mut c, pkt(1), t0).1, [Out::P(1)]);
        assert_eq!(
            step(&mut jb, &mut c, pkt(3), t0 + MS),
            (Pushed::Queued, vec![])
        );
        assert_eq!(
            step(&mut jb, &mut c, pkt(4), t0 + 2 * MS),
            (Pushed::Queued, vec![])
        );
        assert_eq!(jb.poll_timeout(), Some(t0 + MS + LATENCY));
        assert_eq!(
            step(&mut jb, &mut c, pkt(2), t0 + 50 * MS),
            (Pushed::Forward, vec![Out::P(2), Out::P(3), Out::P(4)])
        );
        assert_eq!(jb.poll_timeout(), None);
        let s = jb.stats();
        assert_eq!((s.released, s.lost, s.reordered, s.late), (4, 0, 1, 0));
    }

    #[test]
    fn reorder_beyond_latency_is_lost_then_late() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        step(&mut jb, &mut c, pkt(1), t0);
        step(&mut jb, &mut c, pkt(3), t0);
        assert_eq!(c.drain(&mut jb, t0 + LATENCY), [Out::L(2, 1), Out::P(3)]);
        assert_eq!(
            step(&mut jb, &mut c, pkt(2), t0 + LATENCY + MS),
            (Pushed::Late, vec![])
        );
        let s = jb.stats();
        assert_eq!((s.released, s.lost, s.late, s.duplicates), (2, 1, 1, 0));
    }

    #[test]
    fn loss_is_declared_at_the_deadline() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        step(&mut jb, &mut c, pkt(10), t0);
        step(&mut jb, &mut c, pkt(13), t0 + 10 * MS);
        step(&mut jb, &mut c, pkt(15), t0 + 20 * MS);
        let deadline = t0 + 10 * MS + LATENCY;
        assert_eq!(jb.poll_timeout(), Some(deadline));
        assert_eq!(c.drain(&mut jb, deadline - Duration::from_nanos(1)), []);
        assert_eq!(c.drain(&mut jb, deadline), [Out::L(11, 2), Out::P(13)]);
        assert_eq!(jb.poll_timeout(), Some(deadline + 10 * MS));
        // The later packet's own deadline applies to the gap before it.
        assert_eq!(
            c.drain(&mut jb, deadline + 10 * MS),
            [Out::L(14, 1), Out::P(15)]
        );
        assert_eq!(jb.stats().lost, 3);
    }

    #[test]
    fn a_later_packet_with_an_earlier_deadline_releases_the_head() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        step(&mut jb, &mut c, pkt(1), t0);
        step(&mut jb, &mut c, pkt(5), t0);
        // 3 arrives later than 5, so 5's deadline comes first.
        step(&mut jb, &mut c, pkt(3), t0 + 100 * MS);
        assert_eq!(jb.poll_timeout(), Some(t0 + LATENCY));
        assert_eq!(
            c.drain(&mut jb, t0 + LATENCY),
            [Out::L(2, 1), Out::P(3), Out::L(4, 1), Out::P(5)]
        );
    }

    #[test]
    fn duplicates_are_dropped() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        step(&mut jb, &mut c, pkt(1), t0);
        assert_eq!(
            step(&mut jb, &mut c, pkt(1), t0),
            (Pushed::Duplicate, vec![])
        );
        step(&mut jb, &mut c, pkt(3), t0);
        assert_eq!(
            step(&mut jb, &mut c, pkt(3), t0),
            (Pushed::Duplicate, vec![])
        );
        assert_eq!(
            step(&mut jb, &mut c, pkt(2), t0),
            (Pushed::Forward, vec![Out::P(2), Out::P(3)])
        );
        assert_eq!(
            step(&mut jb, &mut c, pkt(3), t0),
            (Pushed::Duplicate, vec![])
        );
        let s = jb.stats();
        assert_eq!((s.received, s.released, s.duplicates), (6, 3, 3));
    }

    #[test]
    fn sequence_wraps() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        let mut outs = Vec::new();
        for seq in [65533, 65535, 0, 65534, 2, 3] {
            outs.extend(step(&mut jb, &mut c, pkt(seq), t0).1);
        }
        assert_eq!(
            outs,
            [Out::P(65533), Out::P(65534), Out::P(65535), Out::P(0)]
        );
        assert_eq!(
            c.drain(&mut jb, t0 + LATENCY),
            [Out::L(1, 1), Out::P(2), Out::P(3)]
        );
        assert_eq!(step(&mut jb, &mut c, pkt(65535), t0).0, Pushed::Duplicate);
        assert_eq!(step(&mut jb, &mut c, pkt(1), t0).0, Pushed::Late);
        // A gap across the wrap.
        let (mut jb, mut c) = (buffer(Duration::ZERO, 1024), Checker::default());
        step(&mut jb, &mut c, pkt(65534), t0);
        assert_eq!(
            step(&mut jb, &mut c, pkt(1), t0).1,
            [Out::L(65535, 2), Out::P(1)]
        );
    }

    #[test]
    fn ssrc_change_releases_everything_and_restarts() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        for (i, seq) in [1u16, 2, 4].into_iter().enumerate() {
            step(
                &mut jb,
                &mut c,
                pkt_full(seq, 3600 * i as u32, 1),
                t0 + 47 * MS * i as u32,
            );
        }
        assert!(jb.stats().jitter > 0.0);
        let (pushed, outs) = step(&mut jb, &mut c, pkt_full(500, 9, 2), t0 + 200 * MS);
        assert_eq!(pushed, Pushed::Discontinuity);
        assert_eq!(outs, [Out::L(3, 1), Out::P(4), Out::D, Out::P(500)]);
        assert_eq!(jb.stats().jitter, 0.0);
        assert_eq!(jb.stats().discontinuities, 1);
        // The new SSRC continues normally; the old one is now foreign.
        assert_eq!(
            step(&mut jb, &mut c, pkt_full(501, 9, 2), t0 + 201 * MS).1,
            [Out::P(501)]
        );
        assert_eq!(
            step(&mut jb, &mut c, pkt_full(5, 0, 1), t0 + 202 * MS),
            (Pushed::Discontinuity, vec![Out::D, Out::P(5)])
        );
    }

    #[test]
    fn big_sequence_jumps_restart() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        step(&mut jb, &mut c, pkt(1000), t0);
        // Exactly MAX_DROPOUT ahead is still a gap.
        assert_eq!(step(&mut jb, &mut c, pkt(4000), t0).0, Pushed::Queued);
        assert_eq!(
            step(&mut jb, &mut c, pkt(7001), t0),
            (
                Pushed::Discontinuity,
                vec![Out::L(1001, 2999), Out::P(4000), Out::D, Out::P(7001)]
            )
        );
        // Backward beyond the window.
        assert_eq!(
            step(&mut jb, &mut c, pkt(3000), t0),
            (Pushed::Discontinuity, vec![Out::D, Out::P(3000)])
        );
        // Backward within the window, but before the start: late.
        assert_eq!(step(&mut jb, &mut c, pkt(2999), t0).0, Pushed::Late);
        assert_eq!(jb.stats().discontinuities, 2);
    }

    #[test]
    fn overflow_is_bounded_and_counted() {
        let (mut jb, mut c, t0) = (
            buffer(Duration::from_secs(10), 4),
            Checker::default(),
            Instant::now(),
        );
        step(&mut jb, &mut c, pkt(1), t0);
        for seq in [3, 5, 7, 9] {
            assert_eq!(
                step(&mut jb, &mut c, pkt(seq), t0),
                (Pushed::Queued, vec![])
            );
        }
        assert_eq!(jb.stats().overflow, 0);
        // A fifth waiting packet forces the head out, gap declared lost.
        assert_eq!(
            step(&mut jb, &mut c, pkt(11), t0),
            (Pushed::Queued, vec![Out::L(2, 1), Out::P(3)])
        );
        assert_eq!(
            step(&mut jb, &mut c, pkt(13), t0),
            (Pushed::Queued, vec![Out::L(4, 1), Out::P(5)])
        );
        assert_eq!(jb.stats().overflow, 2);
        // Once a gap is given up, what follows it in order flows at once.
        assert_eq!(
            step(&mut jb, &mut c, pkt(8), t0).1,
            [Out::L(6, 1), Out::P(7), Out::P(8), Out::P(9)]
        );
        assert_eq!(jb.stats().overflow, 3);
        assert_eq!(step(&mut jb, &mut c, pkt(15), t0).1, []);
        jb.flush();
        assert_eq!(
            c.drain(&mut jb, t0),
            [
                Out::L(10, 1),
                Out::P(11),
                Out::L(12, 1),
                Out::P(13),
                Out::L(14, 1),
                Out::P(15)
            ]
        );
    }

    #[test]
    fn overflow_by_span_keeps_extension_unambiguous() {
        let (mut jb, mut c, t0) = (
            buffer(Duration::from_secs(10), 1024),
            Checker::default(),
            Instant::now(),
        );
        step(&mut jb, &mut c, pkt(0), t0);
        let mut seq = 0u16;
        for _ in 0..20 {
            seq = seq.wrapping_add(3000);
            assert_eq!(step(&mut jb, &mut c, pkt(seq), t0).0, Pushed::Queued);
        }
        assert!(jb.stats().overflow > 0);
        assert_eq!(jb.stats().discontinuities, 0);
    }

    #[test]
    fn undrained_outputs_stay_bounded() {
        let (mut jb, t0) = (buffer(LATENCY, 2), Instant::now());
        for i in 0..100u16 {
            jb.push(pkt_full(i * 2, 0, u32::from(i % 2)), t0);
            jb.check_invariants();
        }
        let mut c = Checker::default();
        assert!(c.drain(&mut jb, t0).len() <= 6);
        assert_eq!(jb.stats().received, 100);
    }

    #[test]
    fn zero_latency_declares_gaps_at_once() {
        let (mut jb, mut c, t0) = (
            buffer(Duration::ZERO, 1024),
            Checker::default(),
            Instant::now(),
        );
        step(&mut jb, &mut c, pkt(1), t0);
        assert_eq!(
            step(&mut jb, &mut c, pkt(4), t0),
            (Pushed::Queued, vec![Out::L(2, 2), Out::P(4)])
        );
        assert_eq!(step(&mut jb, &mut c, pkt(3), t0).0, Pushed::Late);
        assert_eq!(
            step(&mut jb, &mut c, pkt(5), t0),
            (Pushed::Forward, vec![Out::P(5)])
        );
        assert_eq!(jb.poll_timeout(), None);
    }

    #[test]
    fn flush_releases_everything() {
        let (mut jb, mut c, t0) = (buffer(LATENCY, 1024), Checker::default(), Instant::now());
        for seq in [1, 3, 6] {
            step(&mut jb, &mut c, pkt(seq), t0);
        }
        jb.flush();
        assert_eq!(jb.poll_timeout(), Some(t0));
        assert_eq!(
            c.drain(&mut jb, t0),
            [Out::L(2, 1), Out::P(3), Out::L(4, 2), Out::P(6)]
        );
        assert_eq!(jb.poll_timeout(), None);
        // Pushing after a flush continues the same sequence space.
        assert_eq!(step(&mut jb, &mut c, pkt(3), t0).0, Pushed::Duplicate);
        assert_eq!(step(&mut jb, &mut c, pkt(7), t0).0, Pushed::Forward);
    }

    #[test]
    fn jitter_matches_a_hand_computation() {
        let (mut jb, t0) = (buffer(LATENCY, 1024), Instant::now());
        // 40 ms frames at 90 kHz arriving at 0, 40, 90 and 120 ms: transit
        // times 0, 0, 900, 0 ticks, so |D| = 0, 900, 900 and
        // J = 0, 900/16 = 56.25, 56.25 + (900 - 56.25)/16 = 108.984375.
        let expected = [0.0, 0.0, 56.25, 108.984375];
        for (i, arrival_ms) in [0u32, 40, 90, 120].into_iter().enumerate() {
            let ts = 1_000_000 + 3600 * i as u32;
            jb.push(pkt_full(i as u16, ts, 7), t0 + MS * arrival_ms);
            assert_eq!(jb.stats().jitter, expected[i], "after packet {i}");
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        /// One packet's fate: index, reorder delay, dropped, sent again
        /// this many positions later.
        type Fate = (usize, u32, bool, Option<u32>);

        /// A lossy, reordering, duplicating network: the first sequence
        /// number, the fate of each packet (packet `i` is sent unless
        /// dropped, at position `i + delay`; the first is never dropped nor
        /// delayed) and the time between arrivals in ms.
        fn network() -> impl Strategy<Value = (u16, Vec<Fate>, u64)> {
            (
                any::<u16>(),
                proptest::collection::vec(
                    (
                        0u32..8,
                        proptest::bool::weighted(0.2),
                        proptest::option::weighted(0.1, 0u32..40),
                    ),
                    1..300,
                ),
                0u64..20,
            )
                .prop_map(|(base, pkts, step_ms)| {
                    let pkts = pkts
                        .into_iter()
                        .enumerate()
                        .map(|(i, (delay, drop, dup))| (i, delay, drop && i > 0, dup))
                        .collect();
                    (base, pkts, step_ms)
                })
        }

        proptest! {
            #[test]
            fn matches_a_model((base, pkts, step_ms) in network()) {
                // Arrival order: index 0 first (it defines the start).
                let mut sends: Vec<(u32, usize)> = Vec::new();
                for &(i, delay, drop, dup) in &pkts {
                    if drop {
                        continue;
                    }
                    let pos = if i == 0 { 0 } else { 1 + i as u32 + delay };
                    sends.push((pos, i));
                    if let Some(extra) = dup {
                        sends.push((pos + 1 + extra, i));
                    }
                }
                sends.sort();
                let mut jb = buffer(Duration::from_secs(60), 1024);
                let mut c = Checker::default();
                let t0 = Instant::now();
                let mut outs = Vec::new();
                for (k, &(_, i)) in sends.iter().enumerate() {
                    let now = t0 + Duration::from_millis(step_ms * k as u64);
                    let pushed = jb.push(pkt(base.wrapping_add(i as u16)), now);
                    jb.check_invariants();
                    prop_assert!(!matches!(pushed, Pushed::Late | Pushed::Discontinuity));
                    outs.extend(c.drain(&mut jb, now));
                }
                jb.flush();
                jb.check_invariants();
                outs.extend(c.drain(&mut jb, t0));

                let pushed: std::collections::BTreeSet<usize> =
                    sends.iter().map(|&(_, i)| i).collect();
                let last = *pushed.last().expect("index 0 is always sent");
                // Walk the outputs in extended (index) order.
                let mut pos = 0usize;
                for o in &outs {
                    match *o {
                        Out::P(s) => {
                            prop_assert_eq!(s, base.wrapping_add(pos as u16));
                            prop_assert!(pushed.contains(&pos));
                            pos += 1;
                        }
                        Out::L(f, n) => {
                            prop_assert_eq!(f, base.wrapping_add(pos as u16));
                            for j in pos..pos + n as usize {
                                prop_assert!(!pushed.contains(&j));
                            }
                            pos += n as usize;
                        }
                        Out::D => prop_assert!(false, "discontinuity"),
                    }
                }
                prop_assert_eq!(pos, last + 1);
                let s = jb.stats();
                prop_assert_eq!(s.released, pushed.len() as u64);
                prop_assert_eq!(s.lost, (last + 1 - pushed.len()) as u64);
                prop_assert_eq!(s.duplicates, (sends.len() - pushed.len()) as u64);
                prop_assert_eq!((s.late, s.overflow), (0, 0));
                prop_assert_eq!(jb.poll_timeout(), None);
            }

            #[test]
            fn arbitrary_input_keeps_invariants(
                latency_ms in 0u64..500,
                max_packets in 0usize..16,
                ops in proptest::collection::vec(
                    (any::<u16>(), 0u32..3, 0u64..300, any::<bool>(), 0u8..8),
                    0..200,
                ),
            ) {
                let mut jb = buffer(Duration::from_millis(latency_ms), max_packets);
                let mut c = Checker::default();
                let mut now = Instant::now();
                let mut seq = 0u16;
                for (raw_seq, ssrc, step_ms, near, kind) in ops {
                    now += Duration::from_millis(step_ms);
                    match kind {
                        0 => jb.flush(),
                        1 => {}
                        _ => {
                            // Mostly near the previous number, sometimes anywhere.
                            seq = if near { seq.wrapping_add(raw_seq % 16).wrapping_sub(4) } else { raw_seq };
                            jb.push(pkt_full(seq, raw_seq.into(), ssrc), now);
                        }
                    }
                    jb.check_invariants();
                    c.drain(&mut jb, now);
                    if let Some(t) = jb.poll_timeout() {
                        prop_assert!(t > now);
                    }
                }
                jb.flush();
                c.drain(&mut jb, now);
                prop_assert_eq!(jb.poll_timeout(), None);
            }
        }
    }
}
