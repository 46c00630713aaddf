//! One packetization per camera for all its WebRTC viewers: the first
//! viewer to send a picture cuts it into RTP payloads, every other viewer
//! (live, or replaying the cached GOP) reuses them by reference count. What
//! differs per viewer (RTP header, SRTP) is added as each packet is sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use crate::camera::codec::VideoPacketizer;
use crate::camera::hub::{StreamInfo, VideoFrame};
use crate::camera::Hub;
use crate::h264::packetizer::Payload;

/// Pictures remembered after their last holder is gone are forgotten; this
/// bounds the log when pictures stay alive (a long GOP, a slow viewer).
const MAX_PICTURES: usize = 1024;

/// The payloads of recent pictures of one camera, in the order they were
/// first asked for.
pub(super) struct PictureLog {
    /// The camera's hub (a camera removed and added again has a new one).
    hub: Arc<Hub>,
    /// The payload size the log was made for.
    payload_size: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    packetizer: VideoPacketizer,
    /// The picture (not kept alive by this log) and its payloads.
    pictures: VecDeque<(Weak<VideoFrame>, Arc<[Payload]>)>,
    /// Reused for each packetization.
    scratch: Vec<Payload>,
    /// Packetizations done (for tests and the debug log).
    packetized: u64,
}

impl PictureLog {
    /// The payloads of `frame`, cut once for every viewer; `info` gives the
    /// parameter sets put in front of a keyframe that lacks them.
    pub fn payloads(&self, frame: &Arc<VideoFrame>, info: &StreamInfo) -> Arc<[Payload]> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Live pictures are the newest: found at the first step.
        if let Some((_, p)) = inner
            .pictures
            .iter()
            .rev()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(frame)))
        {
            return p.clone();
        }
        let Inner {
            packetizer,
            scratch,
            ..
        } = &mut *inner;
        scratch.clear();
        packetizer.packetize(frame.codec, &frame.au, info.video_params.as_ref(), scratch);
        let payloads: Arc<[Payload]> = scratch.drain(..).collect();
        inner.packetized += 1;
        while inner
            .pictures
            .front()
            .is_some_and(|(w, _)| w.strong_count() == 0)
            || inner.pictures.len() >= MAX_PICTURES
        {
            inner.pictures.pop_front();
        }
        inner
            .pictures
            .push_back((Arc::downgrade(frame), payloads.clone()));
        payloads
    }

    /// Pictures packetized so far.
    #[cfg(test)]
    pub fn packetized(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .packetized
    }
}

/// The logs by camera id; a log lives while a viewer holds it.
#[derive(Default)]
pub(super) struct PictureLogs {
    logs: Mutex<HashMap<String, Weak<PictureLog>>>,
}

impl PictureLogs {
    /// The log of camera `id` (whose hub is `hub`) for payloads of at most
    /// `payload_size` bytes.
    pub fn get(&self, id: &str, hub: &Arc<Hub>, payload_size: usize) -> Arc<PictureLog> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|_, l| l.strong_count() > 0);
        if let Some(log) = logs
            .get(id)
            .and_then(Weak::upgrade)
            .filter(|l| Arc::ptr_eq(&l.hub, hub) && l.payload_size == payload_size)
        {
            return log;
        }
        let log = Arc::new(PictureLog {
            hub: hub.clone(),
            payload_size,
            inner: Mutex::new(Inner {
                packetizer: VideoPacketizer::new(payload_size),
                pictures: VecDeque::new(),
                scratch: Vec::with_capacity(64),
                packetized: 0,
            }),
        });
        logs.insert(id.to_string(), Arc::downgrade(&log));
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::codec::VideoCodec;
    use crate::h264::AccessUnit;
    use bytes::Bytes;
    use std::time::Instant;

    fn frame(size: usize) -> Arc<VideoFrame> {
        let nal = {
            let mut v = vec![0x41u8];
            v.extend(std::iter::repeat_n(7u8, size));
            Bytes::from(v)
        };
        Arc::new(VideoFrame {
            au: AccessUnit {
                timestamp: 9000,
                nals: vec![nal],
                damaged: false,
                loss_before: false,
            },
            codec: VideoCodec::H264,
            keyframe: false,
            timeline: 0,
            received: Instant::now(),
        })
    }

    #[test]
    fn viewers_of_a_camera_share_each_pictures_payloads() {
        let logs = PictureLogs::default();
        let hub = Arc::new(Hub::new());
        let a = logs.get("cam", &hub, 1200);
        let b = logs.get("cam", &hub, 1200);
        assert!(Arc::ptr_eq(&a, &b));
        let info = StreamInfo::default();
        let f1 = frame(5000);
        let f2 = frame(300);
        let p1 = a.payloads(&f1, &info);
        assert!(p1.len() >= 5, "{}", p1.len());
        assert!(p1.iter().all(|p| p.data.len() <= 1200));
        assert!(p1.last().unwrap().marker);
        let p1b = b.payloads(&f1, &info);
        assert!(Arc::ptr_eq(&p1, &p1b));
        b.payloads(&f2, &info);
        // An older picture is still found.
        assert!(Arc::ptr_eq(&p1, &a.payloads(&f1, &info)));
        assert_eq!(a.packetized(), 2);
        // Another camera, another hub or another size: another log.
        assert!(!Arc::ptr_eq(&a, &logs.get("other", &hub, 1200)));
        assert!(!Arc::ptr_eq(&a, &logs.get("cam", &hub, 1000)));
        let hub2 = Arc::new(Hub::new());
        let c = logs.get("cam", &hub2, 1200);
        assert!(!Arc::ptr_eq(&a, &c));
        // Pictures nobody holds are dropped from the log.
        drop(f1);
        let f3 = frame(10);
        c.payloads(&f3, &info);
        c.payloads(&frame(10), &info);
        assert_eq!(c.inner.lock().unwrap().pictures.len(), 2);
    }
}
