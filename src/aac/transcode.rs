//! AAC access units to Opus frames (RFC 7587) for WebRTC viewers, whose
//! browsers decode no AAC: symphonia's AAC decoder, rubato's FFT resampler
//! when the camera's rate is not one Opus takes, libopus through the `opus`
//! crate (Debian's libopus, found with pkg-config).
//!
//! Why these: symphonia is the maintained pure-Rust decoder family (its AAC
//! decoder reads AAC LC, which is what cameras send; HE-AAC plays its AAC
//! LC core, at half the bandwidth), so no C decoder parses camera bytes;
//! libopus is the reference encoder and every browser's decoder. A pure
//! Rust Opus encoder of comparable quality does not exist yet.
//!
//! Mono: a stereo camera is mixed down to one channel (the mean of left
//! and right) before it is resampled and encoded. Camera audio is a
//! microphone or two beside the lens, heard in a browser tile; mono halves
//! the resampling and encoding, which are most of the cost (encoding a
//! 44.1 kHz stereo camera as stereo cost 0.7 % of a core, over the 0.5 %
//! budget per stream; benches/audio.rs). WebRTC negotiates Opus as
//! `opus/48000/2` whatever is sent (RFC 7587 section 7), and every Opus
//! decoder plays a mono stream; the answer says so by leaving out
//! `sprop-stereo` (default 0: the sender sends mono).
//!
//! Timing: Opus RTP timestamps run at 48 kHz whatever the sampling rate
//! (RFC 7587 section 4.1). Each frame's timestamp is derived from the
//! camera's AAC RTP timestamps (unwrapped to 64 bits, scaled to 48 kHz),
//! so audio keeps its place against video. A small gap (lost access
//! units, an access unit that does not decode) is filled with silence so
//! the frames stay contiguous; a large one, or a step back, starts the
//! stream over at the new time, never before the last frame sent.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use rubato::Resampler;
use symphonia_codec_aac::AacDecoder;
use symphonia_core::audio::{AudioBufferRef, Signal};
use symphonia_core::codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

use super::config::AudioSpecificConfig;
use super::depacketizer::AccessUnit;
use super::AacError;

/// The RTP clock rate of Opus, whatever the audio's sampling rate.
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// Opus frame duration: 20 ms, the WebRTC default (`ptime`).
pub const FRAME_MS: u32 = 20;
/// Input rates the Opus encoder takes as they are.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// A timestamp within this of where the next access unit belongs is
/// taken as contiguous (48 kHz ticks: 2 ms).
const CONTIGUOUS: i64 = 96;
/// Gaps up to this are filled with silence (48 kHz ticks: 500 ms); longer
/// ones start over.
const MAX_FILL: i64 = 24_000;
/// Largest Opus packet written (RFC 7587 allows more; 20 ms at our bit
/// rates is a few hundred bytes).
const MAX_OPUS_PACKET: usize = 1500;
/// Opus encoder complexity (0-10). In the CELT mode used here, 1 turns on
/// transient analysis (short blocks against pre-echo), 2 adds the
/// time-frequency resolution search, 3 the spreading decision, 5 the pitch
/// pre-filter (libopus `celt_encoder.c`). Measured with benches/audio.rs on
/// this project's 2-core machine under another build's load, 44.1 kHz
/// stereo mixed down to mono: 3 costs about 0.48 % of a core for the whole
/// AAC-to-Opus path, 2 about 0.47 %, 1 about 0.38 %. 1 keeps the budget of
/// 0.5 % with room on a busy machine. What the searches add is coding
/// efficiency on tonal and transient sounds; at 32 kbit/s for one channel
/// there are bits to spare, and the tone tests below hold.
pub const COMPLEXITY: i32 = 1;
/// Opus bit rate, bits per second: plenty for one mono channel of camera
/// audio.
pub const BITRATE: i32 = 32_000;

/// One Opus frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusFrame {
    /// The Opus packet.
    pub data: Bytes,
    /// RTP timestamp at 48 kHz, in the scale of the input's (the camera's
    /// AAC timestamps times 48000 / their clock rate), wrapping.
    pub timestamp: u32,
}

/// What the transcoder did, for counters and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscoderStats {
    /// Access units decoded.
    pub decoded: u64,
    /// Access units that did not decode (their time filled with silence).
    pub decode_errors: u64,
    /// Gaps filled with silence.
    pub gaps_filled: u64,
    /// Times the stream started over (large gap or a step back in time).
    pub restarts: u64,
    /// Opus frames produced.
    pub frames: u64,
}

/// Decodes AAC and encodes Opus for one stream. Feed access units in
/// order with [`Transcoder::push`], drain [`Transcoder::poll`]; call
/// [`Transcoder::reset`] when the input's timeline changes.
pub struct Transcoder {
    /// The stream's config (to rebuild the decoder after a panic in it).
    config: AudioSpecificConfig,
    decoder: AacDecoder,
    /// RTP clock rate of the AAC stream.
    clock_rate: u32,
    /// Sampling rate of the decoder's output.
    pcm_rate: u32,
    /// Channels of the camera's AAC (the Opus stream is mono).
    channels: usize,
    /// Samples per channel of one decoded access unit.
    au_samples: usize,
    /// Rate the encoder takes: `pcm_rate`, or 48 kHz after resampling.
    enc_rate: u32,
    /// `pcm_rate` to 48 kHz, when Opus cannot take `pcm_rate`.
    resampler: Option<rubato::FftFixedIn<f32>>,
    /// The resampler's output buffer (one channel).
    resampled: Vec<Vec<f32>>,
    /// One access unit decoded and mixed down to mono (resampler input).
    mono: Vec<f32>,
    encoder: opus::Encoder,
    /// Mono samples waiting for a whole frame, at `enc_rate`.
    pcm: Vec<f32>,
    /// 48 kHz time (unwrapped) of `pcm[0]`.
    pcm_start: i64,
    /// The last input timestamp and its unwrapped value.
    unwrap: Option<(u32, i64)>,
    /// 48 kHz time where the next access unit belongs.
    next_au: Option<i64>,
    /// 48 kHz time at the end of the last frame produced.
    last_end: Option<i64>,
    /// Frames ready, oldest first.
    out: VecDeque<OpusFrame>,
    /// Encoder output buffer.
    packet: Vec<u8>,
    stats: TranscoderStats,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("config", &self.config.describe())
            .field("clock_rate", &self.clock_rate)
            .field("enc_rate", &self.enc_rate)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn new_decoder(config: &AudioSpecificConfig) -> Result<AacDecoder, AacError> {
    let mut params = CodecParameters::new();
    params
        .for_codec(CODEC_TYPE_AAC)
        .with_sample_rate(config.sample_rate)
        .with_extra_data(config.bytes.clone().into_boxed_slice());
    AacDecoder::try_new(&params, &DecoderOptions::default())
        .map_err(|e| AacError::Unsupported(format!("{} cannot be decoded: {e}", config.describe())))
}

impl Transcoder {
    /// A transcoder for AAC of `config` whose RTP clock runs at
    /// `clock_rate`. Fails for what the decoder cannot read (AAC Main, LTP,
    /// LD, more than 2 channels, 960-sample frames).
    pub fn new(config: &AudioSpecificConfig, clock_rate: u32) -> Result<Self, AacError> {
        if clock_rate == 0 {
            return Err(AacError::Malformed("an RTP clock rate of 0".into()));
        }
        let decoder = new_decoder(config)?;
        let channels = usize::from(config.channels);
        let pcm_rate = config.sample_rate;
        let au_samples = usize::from(config.frame_length);
        let (enc_rate, resampler) = if OPUS_RATES.contains(&pcm_rate) {
            (pcm_rate, None)
        } else {
            // About 256 input samples per FFT: a few ms of delay.
            let sub_chunks = (au_samples / 256).max(1);
            let r = rubato::FftFixedIn::<f32>::new(
                pcm_rate as usize,
                OPUS_CLOCK_RATE as usize,
                au_samples,
                sub_chunks,
                1,
            )
            .map_err(|e| AacError::Unsupported(format!("resampling {pcm_rate} Hz: {e}")))?;
            (OPUS_CLOCK_RATE, Some(r))
        };
        // Restricted low delay: CELT only, whose cost does not depend on
        // the content (speech would make the default mode run SILK as
        // well) and whose look-ahead is 2.5 ms instead of 6.5 ms.
        let mut encoder =
            opus::Encoder::new(enc_rate, opus::Channels::Mono, opus::Application::LowDelay)
                .map_err(|e| AacError::Unsupported(format!("Opus encoder: {e}")))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(BITRATE))
            .and_then(|()| encoder.set_complexity(COMPLEXITY))
            .map_err(|e| AacError::Unsupported(format!("Opus encoder: {e}")))?;
        let resampled = match &resampler {
            Some(r) => vec![vec![0.0; r.output_frames_max()]],
            None => Vec::new(),
        };
        Ok(Transcoder {
            config: config.clone(),
            decoder,
            clock_rate,
            pcm_rate,
            channels,
            au_samples,
            enc_rate,
            resampler,
            resampled,
            mono: Vec::with_capacity(au_samples),
            encoder,
            pcm: Vec::with_capacity(4 * au_samples),
            pcm_start: 0,
            unwrap: None,
            next_au: None,
            last_end: None,
            out: VecDeque::new(),
            packet: vec![0; MAX_OPUS_PACKET],
            stats: TranscoderStats::default(),
        })
    }

    /// The config this transcoder decodes.
    pub fn config(&self) -> &AudioSpecificConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> &TranscoderStats {
        &self.stats
    }

    /// Channels of the camera's AAC (1 or 2; the Opus stream is mono).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The next Opus frame, oldest first.
    pub fn poll(&mut self) -> Option<OpusFrame> {
        self.out.pop_front()
    }

    /// The input starts a new timeline (a new camera session, an SSRC
    /// change): what is buffered goes out padded, and timestamps are
    /// unwrapped afresh.
    pub fn reset(&mut self) {
        self.finish_frame();
        self.unwrap = None;
        self.next_au = None;
        self.last_end = None;
        self.decoder.reset();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
    }

    /// 48 kHz ticks of `frames` samples at `rate`.
    fn ticks48(frames: usize, rate: u32) -> i64 {
        frames as i64 * i64::from(OPUS_CLOCK_RATE) / i64::from(rate.max(1))
    }

    /// The unwrapped 48 kHz time of input timestamp `ts`.
    fn time48(&mut self, ts: u32) -> i64 {
        let ext = match self.unwrap {
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
            None => i64::from(ts),
        };
        self.unwrap = Some((ts, ext));
        ext * i64::from(OPUS_CLOCK_RATE) / i64::from(self.clock_rate)
    }

    /// Takes the next access unit.
    pub fn push(&mut self, au: &AccessUnit) {
        let t = self.time48(au.timestamp);
        let au48 = Self::ticks48(self.au_samples, self.pcm_rate);
        match self.next_au {
            Some(next) if (t - next).abs() <= CONTIGUOUS => {}
            Some(next) if t > next && t - next <= MAX_FILL => {
                // Lost access units: silence in their place.
                self.stats.gaps_filled += 1;
                let missing = ((t - next) / au48).max(1);
                for _ in 0..missing {
                    self.append_silence();
                }
            }
            _ => self.restart(t),
        }
        self.next_au = Some(t + au48);
        if !self.decode(&au.data) {
            self.stats.decode_errors += 1;
            self.append_silence();
        } else {
            self.stats.decoded += 1;
        }
        self.encode_ready();
    }

    /// Starts over at 48 kHz time `t` (never before the last frame's end).
    fn restart(&mut self, t: i64) {
        if self.next_au.is_some() {
            self.stats.restarts += 1;
            self.finish_frame();
            self.decoder.reset();
            if let Some(r) = &mut self.resampler {
                r.reset();
            }
        }
        // The resampler's output lags its input by its delay.
        let delay = self
            .resampler
            .as_ref()
            .map_or(0, |r| r.output_delay() as i64);
        let start = t - delay;
        self.pcm.clear();
        self.pcm_start = match self.last_end {
            Some(end) if end > start => end,
            _ => start,
        };
    }

    /// Decodes one access unit into `self.mono` (its channels mixed
    /// down), then on into `pcm`; `false` when it did not decode.
    fn decode(&mut self, data: &Bytes) -> bool {
        let packet = Packet::new_from_boxed_slice(0, 0, 0, data.to_vec().into_boxed_slice());
        let (decoder, mono) = (&mut self.decoder, &mut self.mono);
        // A decoder bug must not take the gateway down with it: camera
        // bytes are untrusted.
        let result = catch_unwind(AssertUnwindSafe(|| match decoder.decode(&packet) {
            Ok(AudioBufferRef::F32(buf)) => {
                let channels = buf.spec().channels.count();
                mono.clear();
                mono.extend_from_slice(buf.chan(0));
                for c in 1..channels {
                    for (m, s) in mono.iter_mut().zip(buf.chan(c)) {
                        *m += s;
                    }
                }
                if channels > 1 {
                    let scale = 1.0 / channels as f32;
                    for m in mono.iter_mut() {
                        *m *= scale;
                    }
                }
                true
            }
            _ => false,
        }));
        let ok = match result {
            Ok(ok) => ok,
            Err(_) => {
                tracing::warn!("the AAC decoder panicked on an access unit; starting it over");
                if let Ok(d) = new_decoder(&self.config) {
                    self.decoder = d;
                }
                false
            }
        };
        if !ok || self.mono.len() != self.au_samples {
            return false;
        }
        self.append_mono();
        true
    }

    fn append_silence(&mut self) {
        self.mono.clear();
        self.mono.resize(self.au_samples, 0.0);
        self.append_mono();
    }

    /// Appends one access unit's worth of `mono` (resampled if needed) to
    /// `pcm`.
    fn append_mono(&mut self) {
        let samples = match &mut self.resampler {
            Some(r) => {
                match r.process_into_buffer(
                    std::slice::from_ref(&self.mono),
                    &mut self.resampled,
                    None,
                ) {
                    Ok((_, produced)) => &self.resampled[0][..produced],
                    Err(e) => {
                        tracing::debug!(error = %e, "resampling failed");
                        return;
                    }
                }
            }
            None => &self.mono[..],
        };
        self.pcm.extend(samples.iter().map(|s| s.clamp(-1.0, 1.0)));
    }

    fn frame_samples(&self) -> usize {
        (self.enc_rate * FRAME_MS / 1000) as usize
    }

    /// Encodes every whole frame in `pcm`.
    fn encode_ready(&mut self) {
        let n = self.frame_samples();
        while self.pcm.len() >= n {
            self.encode_first(n);
        }
    }

    /// Pads what is buffered to a whole frame and encodes it.
    fn finish_frame(&mut self) {
        if self.pcm.is_empty() {
            return;
        }
        let n = self.frame_samples();
        self.pcm.resize(n.max(self.pcm.len()), 0.0);
        self.encode_ready();
        self.pcm.clear();
    }

    fn encode_first(&mut self, n: usize) {
        let frame = self.frame_samples();
        match self.encoder.encode_float(&self.pcm[..n], &mut self.packet) {
            Ok(len) => {
                self.stats.frames += 1;
                self.out.push_back(OpusFrame {
                    data: Bytes::copy_from_slice(&self.packet[..len]),
                    timestamp: self.pcm_start as u32,
                });
                // Bounded: a caller that never polls loses the oldest.
                if self.out.len() > 256 {
                    self.out.pop_front();
                }
            }
            Err(e) => tracing::debug!(error = %e, "Opus encoding failed"),
        }
        self.pcm.drain(..n);
        self.pcm_start += Self::ticks48(frame, self.enc_rate);
        self.last_end = Some(self.pcm_start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aac::testdata::adts;

    /// Decodes Opus frames back to 48 kHz PCM, checking that each is a
    /// mono packet (the TOC byte's stereo flag clear, RFC 6716 3.1).
    fn decode_opus(frames: &[OpusFrame]) -> Vec<f32> {
        let mut d = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut pcm = Vec::new();
        let mut buf = vec![0f32; 5760];
        for f in frames {
            assert_eq!(f.data[0] & 0x04, 0, "a stereo Opus packet");
            let n = d.decode_float(&f.data, &mut buf, false).unwrap();
            pcm.extend_from_slice(&buf[..n]);
        }
        pcm
    }

    /// The power of `pcm` at `freq` Hz against its total power (a
    /// single-bin DFT, Goertzel-style), and its RMS.
    fn tone(pcm: &[f32], freq: f64) -> (f64, f64) {
        let w = 2.0 * std::f64::consts::PI * freq / 48_000.0;
        let (mut re, mut im, mut total) = (0f64, 0f64, 0f64);
        for (n, s) in pcm.iter().enumerate() {
            let s = f64::from(*s);
            re += s * (w * n as f64).cos();
            im += s * (w * n as f64).sin();
            total += s * s;
        }
        let bin = 2.0 * (re * re + im * im) / pcm.len() as f64;
        (
            bin / total.max(f64::MIN_POSITIVE),
            (total / pcm.len() as f64).sqrt(),
        )
    }

    fn run(fixture: &[u8], clock: u32) -> (Transcoder, Vec<OpusFrame>) {
        let (config, aus) = adts(fixture);
        let mut t = Transcoder::new(&config, clock).unwrap();
        let mut out = Vec::new();
        let ticks = 1024 * clock / config.sample_rate;
        for (i, data) in aus.iter().enumerate() {
            t.push(&AccessUnit {
                data: data.clone(),
                timestamp: (u32::MAX - 5000).wrapping_add(i as u32 * ticks),
            });
            while let Some(f) = t.poll() {
                out.push(f);
            }
        }
        (t, out)
    }

    #[test]
    fn a_48k_mono_tone_comes_out_as_the_same_tone_with_contiguous_timestamps() {
        let (t, out) = run(
            include_bytes!("../../tests/fixtures/aac/sine1k_48k_mono.aac"),
            48_000,
        );
        assert_eq!(t.stats().decode_errors, 0);
        assert_eq!((t.stats().gaps_filled, t.stats().restarts), (0, 0));
        // 2 s of AAC, 20 ms frames (the last partial one still buffered).
        assert!((95..=100).contains(&out.len()), "{}", out.len());
        for w in out.windows(2) {
            assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960);
        }
        // The first frame starts at the first access unit's time (the
        // input wrapped through u32::MAX on the way: no jump at the wrap).
        assert_eq!(out[0].timestamp, u32::MAX - 5000);
        let pcm = decode_opus(&out);
        let (share, rms) = tone(&pcm[4800..], 1000.0);
        assert!(share > 0.9, "1 kHz holds {share} of the power");
        assert!(rms > 0.1, "rms {rms}");
    }

    #[test]
    fn a_44k1_stereo_camera_is_resampled_to_48k() {
        let (t, out) = run(
            include_bytes!("../../tests/fixtures/aac/sine440_44k1_stereo.aac"),
            44_100,
        );
        assert_eq!((t.channels(), t.stats().decode_errors), (2, 0));
        // Mixed down to mono: about half the bytes of the stereo stream
        // it replaced (64 kbit/s), 32 kbit/s of 20 ms frames.
        let bytes: usize = out.iter().map(|f| f.data.len()).sum();
        let kbps = bytes as f64 * 8.0 / (out.len() as f64 * 0.02) / 1000.0;
        assert!((24.0..40.0).contains(&kbps), "{kbps} kbit/s");
        for w in out.windows(2) {
            assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960);
        }
        // The AAC timestamps scaled to 48 kHz, less the resampler's delay.
        let first48 = (i64::from(u32::MAX - 5000) * 48_000 / 44_100) as u32;
        let lead = first48.wrapping_sub(out[0].timestamp) as i32;
        assert!((0..480).contains(&lead), "{lead} ticks");
        let pcm = decode_opus(&out);
        let (share, rms) = tone(&pcm[4800..], 440.0);
        assert!(share > 0.9, "440 Hz holds {share} of the power");
        // The same sine in both channels comes out at its level (0.5 peak).
        assert!((0.3..0.4).contains(&rms), "rms {rms}");
    }

    #[test]
    fn a_stereo_camera_is_mixed_down_keeping_both_channels() {
        // 440 Hz on the left, 1 kHz on the right, each 0.5 peak.
        let (t, out) = run(
            include_bytes!("../../tests/fixtures/aac/two_tones_44k1_stereo.aac"),
            44_100,
        );
        assert_eq!((t.channels(), t.stats().decode_errors), (2, 0));
        let pcm = decode_opus(&out);
        let (left, rms) = tone(&pcm[4800..], 440.0);
        let (right, _) = tone(&pcm[4800..], 1000.0);
        // Each side is half of the mix: the mean of the channels, each
        // tone at 0.25 peak, so an RMS of 0.25.
        assert!((0.4..0.6).contains(&left), "440 Hz holds {left}");
        assert!((0.4..0.6).contains(&right), "1 kHz holds {right}");
        assert!(left + right > 0.9, "{left} + {right}");
        assert!((0.2..0.3).contains(&rms), "rms {rms}");
    }

    #[test]
    fn gaps_are_filled_and_jumps_start_over_never_going_back() {
        let (config, aus) = adts(include_bytes!(
            "../../tests/fixtures/aac/sine1k_48k_mono.aac"
        ));
        let mut t = Transcoder::new(&config, 48_000).unwrap();
        let mut ts = 1_000_000u32;
        let mut frames = Vec::new();
        let feed = |t: &mut Transcoder, frames: &mut Vec<OpusFrame>, ts: u32, i: usize| {
            t.push(&AccessUnit {
                data: aus[i].clone(),
                timestamp: ts,
            });
            while let Some(f) = t.poll() {
                frames.push(f);
            }
        };
        for i in 0..20 {
            feed(&mut t, &mut frames, ts, i);
            ts += 1024;
        }
        // Three access units lost: filled with silence, no jump.
        ts += 3 * 1024;
        for i in 20..40 {
            feed(&mut t, &mut frames, ts, i);
            ts += 1024;
        }
        assert_eq!((t.stats().gaps_filled, t.stats().restarts), (1, 0));
        // A program config element, which the decoder refuses: its time
        // is filled.
        t.push(&AccessUnit {
            data: Bytes::from_static(&[0xa0, 0x00, 0x00]),
            timestamp: ts,
        });
        ts += 1024;
        assert_eq!(t.stats().decode_errors, 1);
        // Ten seconds ahead: a new start; then a step back in time.
        ts += 480_000;
        for i in 40..50 {
            feed(&mut t, &mut frames, ts, i);
            ts += 1024;
        }
        ts -= 200_000;
        for i in 50..60 {
            feed(&mut t, &mut frames, ts, i);
            ts += 1024;
        }
        assert_eq!(t.stats().restarts, 2);
        let steps: Vec<i32> = frames
            .windows(2)
            .map(|w| w[1].timestamp.wrapping_sub(w[0].timestamp) as i32)
            .collect();
        assert!(steps.iter().all(|s| *s >= 960), "{steps:?}");
        assert_eq!(steps.iter().filter(|s| **s > 960).count(), 1, "{steps:?}");
        // A new timeline: unwrapping starts over at any timestamp.
        t.reset();
        feed(&mut t, &mut frames, 7, 0);
        assert_eq!(t.stats().restarts, 2);
    }

    #[test]
    fn random_bytes_never_panic() {
        let (config, _) = adts(include_bytes!(
            "../../tests/fixtures/aac/sine1k_48k_mono.aac"
        ));
        let mut t = Transcoder::new(&config, 48_000).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..2000u32 {
            let len = (x % 700) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            t.push(&AccessUnit {
                data: Bytes::from(data),
                timestamp: i * 1024,
            });
            while t.poll().is_some() {}
        }
        assert_eq!(t.stats().decoded + t.stats().decode_errors, 2000);
    }

    #[test]
    fn refuses_what_symphonia_cannot_decode() {
        // AAC Main (object type 1).
        let main = AudioSpecificConfig::parse(&[0x09, 0x88]).unwrap();
        assert!(Transcoder::new(&main, 48_000).is_err());
        let lc = AudioSpecificConfig::parse(&[0x11, 0x88]).unwrap();
        assert!(Transcoder::new(&lc, 0).is_err());
    }
}
