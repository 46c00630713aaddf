//! Output timestamps of a consumer's video that survive camera restarts and
//! GOP replays: continuous across camera sessions (through [`Timeline`]),
//! strictly increasing, and compressed for pictures replayed from the
//! cache. Shared by WebRTC viewers and RTSP clients.

use crate::camera::hub::VideoFrame;
use crate::egress::rtp::Timeline;

/// Spacing of cached pictures replayed in a burst: 1 ms at 90 kHz. The
/// consumer decodes the whole GOP at once and shows its newest picture,
/// then plays on at the camera's pace.
pub(crate) const BURST_SPACING: u32 = 90;

/// Output timestamps of one viewer's video: continuous across camera
/// sessions (through [`Timeline`]), strictly increasing, and compressed for
/// pictures replayed from the cache.
#[derive(Debug)]
pub(crate) struct ViewerClock {
    timeline: Timeline,
    /// Added to the timeline's output.
    shift: u32,
    last: Option<u32>,
}

impl ViewerClock {
    pub fn new() -> Self {
        ViewerClock {
            timeline: Timeline::new(90_000),
            shift: 0,
            last: None,
        }
    }

    /// The timestamp of a live picture: the camera's spacing, and at least
    /// one burst step after the last.
    /// The camera's own timing for `frame`, with the shift so far.
    fn natural(&mut self, frame: &VideoFrame) -> u32 {
        self.timeline
            .map(frame.timeline, frame.au.timestamp, frame.received)
            .wrapping_add(self.shift)
    }

    pub fn live(&mut self, frame: &VideoFrame) -> u32 {
        let natural = self.natural(frame);
        let out = match self.last {
            Some(last) if (natural.wrapping_sub(last) as i32) < BURST_SPACING as i32 => {
                let out = last.wrapping_add(BURST_SPACING);
                self.shift = self.shift.wrapping_add(out.wrapping_sub(natural));
                out
            }
            _ => natural,
        };
        self.last = Some(out);
        out
    }

    /// The timestamp of a cached picture replayed in a burst: one step after
    /// the last; later pictures keep the camera's spacing from this one.
    pub fn burst(&mut self, frame: &VideoFrame) -> u32 {
        let natural = self.natural(frame);
        let out = match self.last {
            Some(last) => last.wrapping_add(BURST_SPACING),
            None => natural,
        };
        self.shift = self.shift.wrapping_add(out.wrapping_sub(natural));
        self.last = Some(out);
        out
    }
}

impl ViewerClock {
    /// The timestamp the first picture will get when it is live (for
    /// RTP-Info before anything was sent).
    pub fn first_output(&self) -> u32 {
        self.timeline.first_output()
    }

    /// The input timeline and timestamp output `out` stands for (see
    /// [`Timeline::to_input`]).
    pub fn to_input(&self, out: u32) -> Option<(u64, u32)> {
        self.timeline.to_input(out.wrapping_sub(self.shift))
    }

    /// The last timestamp handed out, extrapolated to `now` at 90 kHz (a
    /// sender report's RTP timestamp); `None` before any.
    pub fn now_output(&self, now: std::time::Instant) -> Option<u32> {
        let natural = self.timeline.now_output(now)?;
        Some(natural.wrapping_add(self.shift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::AccessUnit;
    use std::time::Instant;

    fn frame(ts: u32, timeline: u64) -> VideoFrame {
        VideoFrame {
            au: AccessUnit {
                timestamp: ts,
                nals: vec![],
                damaged: false,
                loss_before: false,
            },
            codec: crate::camera::codec::VideoCodec::H264,
            keyframe: false,
            timeline,
            received: Instant::now(),
        }
    }

    #[test]
    fn burst_is_compressed_and_live_keeps_the_camera_spacing() {
        let mut c = ViewerClock::new();
        // A cached GOP of three pictures 40 ms apart, replayed.
        let a = c.burst(&frame(1000, 1));
        let b = c.burst(&frame(4600, 1));
        let d = c.burst(&frame(8200, 1));
        assert_eq!(b.wrapping_sub(a), 90);
        assert_eq!(d.wrapping_sub(b), 90);
        // The next live picture is 40 ms after the newest cached one.
        let e = c.live(&frame(11800, 1));
        assert_eq!(e.wrapping_sub(d), 3600);
        // A replay after a PLI goes forward, never back.
        let f = c.burst(&frame(1000, 1));
        let g = c.burst(&frame(11800, 1));
        assert_eq!(f.wrapping_sub(e), 90);
        assert_eq!(g.wrapping_sub(f), 90);
        let h = c.live(&frame(15400, 1));
        assert_eq!(h.wrapping_sub(g), 3600);
    }

    #[test]
    fn live_timestamps_never_go_back() {
        let mut c = ViewerClock::new();
        let a = c.live(&frame(5000, 1));
        // The camera's clock steps back within a session.
        let b = c.live(&frame(4000, 1));
        assert_eq!(b.wrapping_sub(a), 90);
        let d = c.live(&frame(7600, 1));
        assert_eq!(d.wrapping_sub(b), 3600);
    }
}
