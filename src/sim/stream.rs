//! The per-session media core of the sim: turns "send the next frame" into
//! RTP packets (RFC 3550; RFC 6184 or RFC 7798 payloads as the clip was
//! packetized; RFC 3551) and RTCP sender reports, written into a
//! caller-owned buffer. Sans-IO: no sockets, no clocks.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use super::clip::{
    Clip, AUDIO_CLOCK_RATE, AUDIO_PACKETS_PER_FRAME, AUDIO_SAMPLES_PER_PACKET, FPS,
    VIDEO_CLOCK_RATE, VIDEO_TICKS_PER_FRAME,
};
use crate::rtp::rtcp::ntp_timestamp;
use crate::rtp::RtpPacket;

/// Video frame period.
pub(crate) const FRAME_PERIOD: Duration = Duration::from_millis(1000 / FPS as u64);

/// Frames between RTCP sender reports (5 s).
const FRAMES_PER_SR: u64 = 5 * FPS as u64;

/// Dynamic payload type of the video stream (H.264 or H.265) in our SDP.
pub(crate) const VIDEO_PT: u8 = 96;

/// Static payload type of PCMU (RFC 3551 table 4).
pub(crate) const AUDIO_PT: u8 = 0;

/// The two media of a sim camera, by SDP order (`trackID=N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Track {
    /// H.264 or H.265, `trackID=0`.
    Video,
    /// PCMU, `trackID=1`.
    Audio,
}

impl Track {
    /// The track for a `trackID` number.
    pub(crate) fn from_id(id: u32) -> Option<Track> {
        match id {
            0 => Some(Track::Video),
            1 => Some(Track::Audio),
            _ => None,
        }
    }

    /// The `trackID` number.
    pub(crate) fn id(self) -> u32 {
        match self {
            Track::Video => 0,
            Track::Audio => 1,
        }
    }
}

/// RTP state of one stream of a session.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    /// Which medium this is.
    pub(crate) track: Track,
    /// Synchronization source, random per stream.
    pub(crate) ssrc: u32,
    /// Sequence number of the next RTP packet; random start.
    seq: u16,
    /// RTP timestamp of media time zero; random.
    ts_base: u32,
    /// RTP packets sent, for sender reports.
    packets: u32,
    /// RTP payload octets sent, for sender reports.
    octets: u32,
    /// `(rtp, rtcp)` channels over RTSP TCP; `None` for UDP (each packet is
    /// a datagram then).
    pub(crate) interleaved: Option<(u8, u8)>,
    /// The control URL the client used in SETUP, echoed in `RTP-Info`.
    pub(crate) url: String,
}

impl StreamState {
    /// A stream with random SSRC, sequence number and timestamp base.
    pub(crate) fn new(track: Track, interleaved: Option<(u8, u8)>, url: String) -> Self {
        StreamState {
            track,
            ssrc: rand::random(),
            seq: rand::random(),
            ts_base: rand::random(),
            packets: 0,
            octets: 0,
            interleaved,
            url,
        }
    }
}

/// Where one packet lies in the output buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PacketRef {
    /// Index of the stream in [`Streamer::streams`].
    pub(crate) stream: usize,
    /// True for RTCP (goes to the RTCP port), false for RTP.
    pub(crate) rtcp: bool,
    /// Byte range in the buffer, without any interleaved header.
    pub(crate) range: Range<usize>,
}

/// `RTP-Info` values of one stream (RFC 2326 section 12.33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RtpInfo {
    /// The stream's control URL.
    pub(crate) url: String,
    /// Sequence number of the next packet.
    pub(crate) seq: u16,
    /// RTP timestamp of the next packet.
    pub(crate) rtptime: u32,
}

/// Media state of one session: which frame is next and each stream's RTP
/// counters. Timestamps follow the frame count, so they stay continuous
/// across loops of the clip and across PAUSE/PLAY.
#[derive(Debug)]
pub(crate) struct Streamer {
    /// The shared clip.
    clip: &'static Clip,
    /// Set-up streams, in SETUP order.
    pub(crate) streams: Vec<StreamState>,
    /// Media time of the next frame, in frames since the session started.
    frame: u64,
    /// Index in the clip of the next video frame: follows `frame` until a
    /// keyframe request or encoder restart jumps it to a keyframe.
    clip_pos: usize,
    /// Whether the parameter sets are sent in band (false: `sprop_only`).
    in_band_params: bool,
}

impl Streamer {
    /// A session with no streams yet.
    pub(crate) fn new(clip: &'static Clip) -> Self {
        Streamer {
            clip,
            streams: Vec::new(),
            frame: 0,
            clip_pos: 0,
            in_band_params: true,
        }
    }

    /// Leaves the parameter sets (SPS and PPS; H.265 also VPS) out of the
    /// stream (`sprop_only`): only the SDP carries them.
    pub(crate) fn set_in_band_params(&mut self, in_band: bool) {
        self.in_band_params = in_band;
    }

    /// Index of the video stream, if set up.
    pub(crate) fn video(&self) -> Option<usize> {
        self.streams.iter().position(|s| s.track == Track::Video)
    }

    /// Makes the next video frame the clip's next keyframe (H.264 IDR,
    /// H.265 IRAP; itself if it is one). Timestamps and sequence numbers go
    /// on as before: the clip position jumps, the RTP timeline does not.
    pub(crate) fn jump_to_keyframe(&mut self) {
        let frames = &self.clip.frames;
        let n = frames.len();
        if let Some(k) = (0..n).find(|k| frames[(self.clip_pos + k) % n].keyframe) {
            self.clip_pos = (self.clip_pos + k) % n;
        }
    }

    /// An encoder restart: the video stream takes `ssrc` and continues at
    /// sequence number `seq`, starting over at the clip's next keyframe.
    pub(crate) fn restart_video(&mut self, ssrc: u32, seq: u16) {
        if let Some(i) = self.video() {
            let s = &mut self.streams[i];
            s.ssrc = ssrc;
            s.seq = seq;
            s.packets = 0;
            s.octets = 0;
        }
        self.jump_to_keyframe();
    }

    /// Moves every stream's RTP timestamps 10 s forward (a camera clock
    /// step): 900000 ticks of video, 80000 of audio.
    pub(crate) fn jump_timestamps(&mut self) {
        for s in &mut self.streams {
            let rate = match s.track {
                Track::Video => VIDEO_CLOCK_RATE,
                Track::Audio => AUDIO_CLOCK_RATE,
            };
            s.ts_base = s.ts_base.wrapping_add(10 * rate);
        }
    }

    /// The stream for `track`, if set up.
    pub(crate) fn has(&self, track: Track) -> bool {
        self.streams.iter().any(|s| s.track == track)
    }

    /// `RTP-Info` of each stream for the next packets to be sent.
    pub(crate) fn rtp_info(&self) -> Vec<RtpInfo> {
        self.streams
            .iter()
            .map(|s| RtpInfo {
                url: s.url.clone(),
                seq: s.seq,
                rtptime: self.rtptime(s),
            })
            .collect()
    }

    /// RTP timestamp of the next frame's media time for `s`.
    fn rtptime(&self, s: &StreamState) -> u32 {
        let ticks = match s.track {
            Track::Video => self.frame.wrapping_mul(u64::from(VIDEO_TICKS_PER_FRAME)),
            Track::Audio => self
                .frame
                .wrapping_mul(AUDIO_PACKETS_PER_FRAME * AUDIO_SAMPLES_PER_PACKET as u64),
        };
        s.ts_base.wrapping_add(ticks as u32)
    }

    /// Appends the next frame's packets (and, every 5 s, a sender report
    /// per stream) to `out`, recording each packet in `packets`. Streams
    /// with interleaved channels get a 4-byte `$` header (RFC 2326 section
    /// 10.12) so `out` can be written to the RTSP connection as is. `wall`
    /// is the current wall-clock time for the sender reports. Returns true
    /// when the video frame written is a keyframe.
    pub(crate) fn write_next(
        &mut self,
        wall: SystemTime,
        out: &mut Vec<u8>,
        packets: &mut Vec<PacketRef>,
    ) -> bool {
        let frame = self.frame;
        if frame % FRAMES_PER_SR == 0 {
            let ntp = ntp_timestamp(wall);
            for i in 0..self.streams.len() {
                let rtptime = self.rtptime(&self.streams[i]);
                let s = &self.streams[i];
                let start = begin_packet(out, s.interleaved.map(|c| c.1));
                write_sender_report(out, s.ssrc, ntp, rtptime, s.packets, s.octets);
                finish_packet(out, packets, i, true, start, s.interleaved.is_some());
            }
        }
        let clip = self.clip;
        let frames = clip.frames(self.in_band_params);
        let video = &frames[self.clip_pos % frames.len()];
        for i in 0..self.streams.len() {
            let rtptime = self.rtptime(&self.streams[i]);
            let s = &mut self.streams[i];
            match s.track {
                Track::Video => {
                    for p in &video.payloads {
                        write_rtp(out, packets, i, s, p.marker, VIDEO_PT, rtptime, &p.data);
                    }
                }
                Track::Audio => {
                    for k in 0..AUDIO_PACKETS_PER_FRAME {
                        let n = frame * AUDIO_PACKETS_PER_FRAME + k;
                        let payload = &clip.audio[(n % clip.audio.len() as u64) as usize];
                        let ts = rtptime
                            .wrapping_add((k as u32).wrapping_mul(AUDIO_SAMPLES_PER_PACKET as u32));
                        // RFC 3551 section 4.1: the marker flags the first
                        // packet of a talkspurt; the stream is continuous.
                        let marker = n == 0;
                        write_rtp(out, packets, i, s, marker, AUDIO_PT, ts, payload);
                    }
                }
            }
        }
        self.frame += 1;
        self.clip_pos = (self.clip_pos + 1) % frames.len();
        video.keyframe && self.video().is_some()
    }
}

/// Writes one RTP packet for stream `i`, advancing its counters.
#[allow(clippy::too_many_arguments)]
fn write_rtp(
    out: &mut Vec<u8>,
    packets: &mut Vec<PacketRef>,
    i: usize,
    s: &mut StreamState,
    marker: bool,
    pt: u8,
    ts: u32,
    payload: &[u8],
) {
    let start = begin_packet(out, s.interleaved.map(|c| c.0));
    RtpPacket::write(out, marker, pt, s.seq, ts, s.ssrc, payload);
    finish_packet(out, packets, i, false, start, s.interleaved.is_some());
    s.seq = s.seq.wrapping_add(1);
    s.packets = s.packets.wrapping_add(1);
    s.octets = s.octets.wrapping_add(payload.len() as u32);
}

/// Reserves the interleaved header if `channel` is set; returns where the
/// packet (header included) starts.
fn begin_packet(out: &mut Vec<u8>, channel: Option<u8>) -> usize {
    let start = out.len();
    if let Some(ch) = channel {
        out.extend_from_slice(&[b'$', ch, 0, 0]);
    }
    start
}

/// Fills in the interleaved length and records the packet.
fn finish_packet(
    out: &mut [u8],
    packets: &mut Vec<PacketRef>,
    stream: usize,
    rtcp: bool,
    start: usize,
    interleaved: bool,
) {
    let body = if interleaved { start + 4 } else { start };
    if interleaved {
        // Payloads are at most MAX_PAYLOAD + 12 bytes, far below 64 KiB.
        let len = u16::try_from(out.len() - body).unwrap_or(u16::MAX);
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    packets.push(PacketRef {
        stream,
        rtcp,
        range: body..out.len(),
    });
}

/// Appends a 28-byte RTCP sender report with no report blocks (RFC 3550
/// section 6.4.1).
fn write_sender_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    ntp: u64,
    rtptime: u32,
    packets: u32,
    octets: u32,
) {
    out.extend_from_slice(&[0x80, 200, 0, 6]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtptime.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::clip::clip;
    use super::*;
    use crate::camera::codec::VideoCodec;

    fn rtp_fields(p: &[u8]) -> (bool, u8, u16, u32, u32) {
        (
            p[1] & 0x80 != 0,
            p[1] & 0x7f,
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        )
    }

    #[test]
    fn continuous_across_loops_and_interleaved_framing() {
        let clip = clip(VideoCodec::H264);
        let mut s = Streamer::new(clip);
        s.streams
            .push(StreamState::new(Track::Video, Some((0, 1)), "v".into()));
        s.streams
            .push(StreamState::new(Track::Audio, Some((2, 3)), "a".into()));
        let info = s.rtp_info();
        let (mut out, mut pk) = (Vec::new(), Vec::new());
        let mut next_seq = [info[0].seq, info[1].seq];
        let mut last_video_ts = None;
        let mut srs = 0;
        for n in 0..(clip.frames.len() as u64 * 2 + 3) {
            out.clear();
            pk.clear();
            s.write_next(SystemTime::now(), &mut out, &mut pk);
            // The buffer is exactly the `$` frames of the recorded packets.
            let mut pos = 0;
            for p in &pk {
                assert_eq!(out[pos], b'$');
                let len = usize::from(u16::from_be_bytes([out[pos + 2], out[pos + 3]]));
                assert_eq!(p.range, pos + 4..pos + 4 + len);
                let ch = out[pos + 1];
                assert_eq!(ch, [0, 2][p.stream] + u8::from(p.rtcp));
                let pkt = &out[p.range.clone()];
                // The hand-written `$` header is what rtsp-types would write.
                let mut framed = Vec::new();
                rtsp_types::Data::new(ch, pkt)
                    .write(&mut framed)
                    .expect("Vec write");
                assert_eq!(framed, &out[pos..p.range.end]);
                if p.rtcp {
                    srs += 1;
                    assert_eq!((pkt.len(), pkt[1]), (28, 200));
                } else {
                    let (m, pt, seq, ts, ssrc) = rtp_fields(pkt);
                    assert_eq!(seq, next_seq[p.stream]);
                    next_seq[p.stream] = seq.wrapping_add(1);
                    assert_eq!(ssrc, s.streams[p.stream].ssrc);
                    if p.stream == 0 {
                        assert_eq!(pt, 96);
                        assert_eq!(ts, info[0].rtptime.wrapping_add(n as u32 * 3600));
                        if m {
                            if let Some(prev) = last_video_ts {
                                assert_eq!(ts.wrapping_sub(prev), 3600);
                            }
                            last_video_ts = Some(ts);
                        }
                    } else {
                        assert_eq!(pt, 0);
                        assert_eq!(pkt.len(), 12 + 160);
                    }
                }
                pos = p.range.end;
            }
            assert_eq!(pos, out.len());
        }
        assert_eq!(srs, 2 * 2);
    }
}
