//! Drives the RTSP client with arbitrary camera bytes and timer steps.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use camgate::rtsp::{Client, ClientConfig, Event, TransportRequest};

#[derive(Arbitrary, Debug)]
enum Step {
    Input(Vec<u8>),
    Advance(u16),
    Interleaved(u8, Vec<u8>),
    Teardown,
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `Vec<Step>` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(steps) = <Vec<Step> as arbitrary::Arbitrary>::arbitrary_take_rest(
        arbitrary::Unstructured::new(data),
    ) else {
        return;
    };
    let mut now = Instant::now();
    let config = ClientConfig {
        url: "rtsp://user:pw@cam/stream"
            .parse()
            .expect("constant URL is valid"),
        credentials: Some(camgate::credentials::Credentials::new("user", "pw")),
        user_agent: "fuzz".into(),
    };
    let mut client = Client::new(config, now);
    for step in steps {
        match step {
            Step::Input(b) => client.handle_input(&b, now),
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms) * 10);
                client.handle_timeout(now);
            }
            Step::Interleaved(c, d) => client.send_interleaved(c, &d),
            Step::Teardown => client.teardown(now),
        }
        while let Some(ev) = client.poll_event() {
            if let Event::Described(p) = ev {
                let streams = (0..p.streams.len())
                    .map(|i| {
                        (
                            i,
                            TransportRequest::Tcp {
                                rtp_channel: (2 * i) as u8,
                            },
                        )
                    })
                    .collect();
                client.setup(streams, now);
            }
        }
        while client.poll_transmit().is_some() {}
        let _ = (
            client.poll_timeout(),
            client.session_timeout(),
            client.server(),
        );
    }
}
