//! One camera's AAC RTP payloads in, Opus frames out: the depacketizer and
//! the transcoder joined, rebuilt when the decoder config changes in band
//! (LATM) and restarted when the input's timeline changes (a new camera
//! session, an SSRC change), so the driver that feeds it stays a loop.

use std::collections::VecDeque;

use bytes::Bytes;

use super::config::{AacFormat, AudioSpecificConfig};
use super::depacketizer::Depacketizer;
use super::transcode::{OpusFrame, Transcoder};

/// Most frames waiting to be polled; beyond it the oldest go.
const MAX_READY: usize = 64;

/// AAC RTP payloads of one stream to Opus frames. Call
/// [`AacToOpus::push`] for each packet in order, then drain
/// [`AacToOpus::poll`]; [`AacToOpus::lost`] when packets were skipped.
#[derive(Debug)]
pub struct AacToOpus {
    /// RTP payloads to access units.
    depacketizer: Depacketizer,
    /// Access units to Opus, once a config that decodes is known.
    transcoder: Option<Transcoder>,
    /// The config `transcoder` was made for (or failed for): a config
    /// that does not decode is tried once, not for every access unit.
    built_for: Option<AudioSpecificConfig>,
    /// The input timeline the timestamps belong to.
    timeline: Option<u64>,
    /// Why the current config does not decode (said once per config).
    refused: Option<String>,
    /// Frames ready, with the timeline of their timestamps.
    out: VecDeque<(OpusFrame, u64)>,
}

impl AacToOpus {
    /// A pipeline for a stream of `format`.
    pub fn new(format: AacFormat) -> Self {
        let mut p = AacToOpus {
            depacketizer: Depacketizer::new(format),
            transcoder: None,
            built_for: None,
            timeline: None,
            refused: None,
            out: VecDeque::new(),
        };
        p.build();
        p
    }

    /// Makes the transcoder for the depacketizer's config.
    fn build(&mut self) {
        self.drain_transcoder();
        self.transcoder = None;
        self.built_for = self.depacketizer.config().cloned();
        if let Some(c) = &self.built_for {
            match Transcoder::new(c, self.depacketizer.clock_rate()) {
                Ok(t) => {
                    self.refused = None;
                    self.transcoder = Some(t);
                }
                Err(e) => self.refused = Some(e.to_string()),
            }
        }
    }

    /// The next Opus frame and the input timeline its timestamp belongs to.
    pub fn poll(&mut self) -> Option<(OpusFrame, u64)> {
        self.out.pop_front()
    }

    /// Packets were lost or skipped.
    pub fn lost(&mut self) {
        self.depacketizer.lost();
    }

    /// Why the stream's config cannot be transcoded, if it cannot.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Takes the next packet: payload, RTP timestamp, marker bit and the
    /// input timeline the timestamp belongs to.
    pub fn push(&mut self, payload: &Bytes, timestamp: u32, marker: bool, timeline: u64) {
        if self.timeline != Some(timeline) {
            if self.timeline.is_some() {
                self.depacketizer.lost();
                if let Some(t) = &mut self.transcoder {
                    t.reset();
                }
                self.drain_transcoder();
            }
            self.timeline = Some(timeline);
        }
        self.depacketizer.push(payload, timestamp, marker);
        while let Some(au) = self.depacketizer.pull() {
            if self.depacketizer.config() != self.built_for.as_ref() {
                self.build();
            }
            if let Some(t) = &mut self.transcoder {
                t.push(&au);
            }
            self.drain_transcoder();
        }
    }

    fn drain_transcoder(&mut self) {
        let (Some(t), Some(timeline)) = (&mut self.transcoder, self.timeline) else {
            return;
        };
        while let Some(f) = t.poll() {
            if self.out.len() >= MAX_READY {
                self.out.pop_front();
            }
            self.out.push_back((f, timeline));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aac::testdata::rfc4571;

    #[test]
    fn gstreamer_packets_become_contiguous_opus_frames_per_timeline() {
        let format = AacFormat::from_sdp(
            "MPEG4-GENERIC",
            48_000,
            Some("mode=AAC-hbr;config=1188;sizelength=13;indexlength=3;indexdeltalength=3"),
        )
        .unwrap();
        let mut p = AacToOpus::new(format);
        let packets = rfc4571(include_bytes!("../../tests/fixtures/aac/mp4g_48k_mono.rtp"));
        let mut frames = Vec::new();
        for (timeline, half) in [(1u64, 0usize), (2, 1)] {
            let n = packets.len() / 2;
            for pkt in &packets[half * n..(half + 1) * n] {
                // The second timeline's timestamps are unrelated.
                let ts = pkt.timestamp.wrapping_add(timeline as u32 * 0x4000_0000);
                p.push(&pkt.payload(), ts, pkt.marker, timeline);
                while let Some(f) = p.poll() {
                    frames.push(f);
                }
            }
        }
        assert!(p.refused().is_none());
        // 2 s of audio in 20 ms frames, but for the partial ones.
        assert!((95..=100).contains(&frames.len()), "{}", frames.len());
        let first_of_2 = frames.iter().position(|(_, t)| *t == 2).unwrap();
        assert!(frames[first_of_2..].iter().all(|(_, t)| *t == 2));
        for (i, w) in frames.windows(2).enumerate() {
            if i + 1 != first_of_2 {
                let step = w[1].0.timestamp.wrapping_sub(w[0].0.timestamp);
                assert_eq!(step, 960, "frame {i}");
            }
        }
        // The second timeline starts at its own first access unit's time.
        let start2 = packets[packets.len() / 2]
            .timestamp
            .wrapping_add(0x8000_0000);
        let off = frames[first_of_2].0.timestamp.wrapping_sub(start2) as i32;
        assert!(off.abs() <= 1100, "{off}");
    }

    #[test]
    fn a_config_that_does_not_decode_is_refused_with_the_reason() {
        // AAC Main, 48 kHz mono: the decoder reads AAC LC only.
        let format =
            AacFormat::from_sdp("MPEG4-GENERIC", 48_000, Some("mode=AAC-hbr;config=0988")).unwrap();
        let mut p = AacToOpus::new(format);
        let mut payload = vec![0, 16, 0, 0x18];
        payload.extend_from_slice(&[1, 2, 3]);
        p.push(&Bytes::from(payload), 0, true, 1);
        assert!(p.poll().is_none());
        assert!(
            p.refused().unwrap().contains("AAC Main"),
            "{:?}",
            p.refused()
        );
    }
}
