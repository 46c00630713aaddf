//! Opus for the WebRTC viewers of an AAC camera: one task per camera
//! decodes the camera's AAC and encodes Opus (`aac::AacToOpus`), shared by
//! all its viewers. The first viewer that needs it starts the task, the
//! last one to leave ends it: a camera nobody watches in a browser costs
//! no decoding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::aac::{AacFormat, AacToOpus};
use crate::camera::hub::{AudioInfo, MediaEvent};
use crate::camera::Hub;

/// Opus frames a viewer may be behind before it loses some (5 s).
const CAPACITY: usize = 250;

/// One Opus frame for viewers.
#[derive(Debug)]
pub(super) struct OpusPacket {
    /// The Opus packet (RFC 7587 payload).
    pub data: Bytes,
    /// RTP timestamp at 48 kHz, on `timeline`.
    pub timestamp: u32,
    /// The camera's input timeline the timestamp belongs to (as for
    /// `AudioPacket`), so viewers re-anchor when it changes.
    pub timeline: u64,
    /// When the AAC that completed the frame arrived.
    pub received: Instant,
}

/// A running feed; dropping the last handle ends its task.
struct Feed {
    /// The hub it reads (a camera removed and added again has a new one).
    hub: Arc<Hub>,
    /// Where frames go.
    tx: broadcast::Sender<Arc<OpusPacket>>,
    /// Ends the task.
    cancel: CancellationToken,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A viewer's hold on its camera's feed: the feed runs while one exists.
pub(super) struct OpusSubscription {
    /// Keeps the feed running.
    _feed: Arc<Feed>,
    /// The frames.
    pub rx: broadcast::Receiver<Arc<OpusPacket>>,
}

/// The running feeds by camera id.
#[derive(Default)]
pub(super) struct OpusFeeds {
    feeds: Mutex<HashMap<String, Weak<Feed>>>,
}

impl OpusFeeds {
    /// Subscribes to the feed of camera `id`, whose hub is `hub`, starting
    /// it (a child of `cancel`, tracked by `tasks`) when none runs.
    pub fn subscribe(
        &self,
        id: &str,
        hub: &Arc<Hub>,
        cancel: &CancellationToken,
        tasks: &TaskTracker,
    ) -> OpusSubscription {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds.retain(|_, f| f.strong_count() > 0);
        if let Some(feed) = feeds
            .get(id)
            .and_then(Weak::upgrade)
            .filter(|f| Arc::ptr_eq(&f.hub, hub))
        {
            return OpusSubscription {
                rx: feed.tx.subscribe(),
                _feed: feed,
            };
        }
        let (tx, rx) = broadcast::channel(CAPACITY);
        let feed = Arc::new(Feed {
            hub: hub.clone(),
            tx: tx.clone(),
            cancel: cancel.child_token(),
        });
        feeds.insert(id.to_string(), Arc::downgrade(&feed));
        let span = tracing::info_span!("camera", id = %id);
        tasks.spawn(run(hub.clone(), tx, feed.cancel.clone()).instrument(span));
        OpusSubscription { _feed: feed, rx }
    }

    /// Feeds running (for tests).
    #[cfg(test)]
    fn running(&self) -> usize {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds.values().filter(|f| f.strong_count() > 0).count()
    }
}

/// The pipeline for the camera's current audio, if it is AAC.
fn pipeline(audio: Option<&AudioInfo>) -> Option<AacToOpus> {
    let a = audio?;
    match AacFormat::from_sdp(&a.encoding, a.clock_rate, a.fmtp.as_deref()) {
        Ok(format) => Some(AacToOpus::new(format)),
        Err(e) => {
            tracing::debug!(error = %e, "no Opus for the camera's audio");
            None
        }
    }
}

/// Transcodes the hub's AAC to `tx` until cancelled.
async fn run(hub: Arc<Hub>, tx: broadcast::Sender<Arc<OpusPacket>>, cancel: CancellationToken) {
    let mut rx = hub.subscribe();
    let mut info = hub.watch_info();
    let mut current = info.borrow_and_update().audio.clone();
    let mut aac = pipeline(current.as_ref());
    let mut refused: Option<String> = None;
    let mut frames = 0u64;
    tracing::debug!("opus feed started");
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = rx.recv() => ev,
        };
        match event {
            Ok(MediaEvent::Audio(pkt)) => {
                if info.has_changed().unwrap_or(false) {
                    let audio = info.borrow_and_update().audio.clone();
                    if audio != current {
                        aac = pipeline(audio.as_ref());
                        current = audio;
                    }
                }
                let Some(p) = aac.as_mut() else { continue };
                p.push(&pkt.payload, pkt.timestamp, pkt.marker, pkt.timeline);
                if p.refused() != refused.as_deref() {
                    refused = p.refused().map(str::to_string);
                    if let Some(why) = &refused {
                        tracing::warn!("the camera's AAC cannot be sent to browsers: {why}");
                    }
                }
                while let Some((frame, timeline)) = p.poll() {
                    frames += 1;
                    // No viewer listening yet is not an error.
                    let _ = tx.send(Arc::new(OpusPacket {
                        data: frame.data,
                        timestamp: frame.timestamp,
                        timeline,
                        received: pkt.received,
                    }));
                }
            }
            Ok(MediaEvent::Video(_)) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(skipped = n, "opus feed fell behind");
                if let Some(p) = aac.as_mut() {
                    p.lost();
                }
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    tracing::debug!(frames, "opus feed stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::hub::{AudioPacket, StreamInfo};
    use std::time::Duration;

    /// The AAC-hbr packets of the GStreamer fixture, as the hub carries
    /// them.
    fn packets() -> Vec<AudioPacket> {
        let data = include_bytes!("../../../tests/fixtures/aac/mp4g_48k_mono.rtp");
        let mut out = Vec::new();
        let mut rest = &data[..];
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (raw, next) = tail.split_at(len);
            let pkt = crate::rtp::RtpPacket::parse(Bytes::copy_from_slice(raw)).unwrap();
            out.push(AudioPacket {
                payload: pkt.payload(),
                timestamp: pkt.timestamp,
                marker: pkt.marker,
                timeline: 1,
                received: Instant::now(),
            });
            rest = next;
        }
        out
    }

    fn aac_info() -> StreamInfo {
        StreamInfo {
            audio: Some(AudioInfo {
                encoding: "MPEG4-GENERIC".into(),
                clock_rate: 48_000,
                channels: Some(1),
                payload_type: 96,
                fmtp: Some(
                    "mode=AAC-hbr;config=1188;sizelength=13;indexlength=3;indexdeltalength=3"
                        .into(),
                ),
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn one_feed_per_camera_while_viewers_hold_it() {
        let hub = Arc::new(Hub::new());
        hub.set_info(aac_info());
        let cancel = CancellationToken::new();
        let feeds = OpusFeeds::default();
        let tasks = TaskTracker::new();
        assert_eq!(hub.consumers(), 0, "no viewer, no decoding");
        let mut a = feeds.subscribe("lobby", &hub, &cancel, &tasks);
        let mut b = feeds.subscribe("lobby", &hub, &cancel, &tasks);
        assert_eq!((feeds.running(), tasks.len()), (1, 1));
        // The task subscribes to the hub as it starts.
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.consumers() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        for p in packets() {
            hub.publish(MediaEvent::Audio(Arc::new(p)));
            tokio::task::yield_now().await;
        }
        let mut got = Vec::new();
        while got.len() < 50 {
            let p = tokio::time::timeout(Duration::from_secs(5), a.rx.recv())
                .await
                .unwrap()
                .unwrap();
            got.push(p);
        }
        let first_b = tokio::time::timeout(Duration::from_secs(5), b.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            Arc::ptr_eq(&first_b, &got[0]),
            "both viewers get the same frames"
        );
        for w in got.windows(2) {
            assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960);
            assert_eq!(w[1].timeline, 1);
        }
        // The last viewer leaves: the task ends and leaves the hub.
        drop(a);
        assert_eq!(feeds.running(), 1);
        drop(b);
        assert_eq!(feeds.running(), 0);
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .unwrap();
        assert_eq!(hub.consumers(), 0);
    }
}
