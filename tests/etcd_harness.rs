//! The etcd harness of the cluster tests (tests/common/etcd.rs) against
//! Debian's etcd 3.4: a put read back with etcdctl, writes counted from
//! etcd's metrics, and the data kept across a stop (SIGTERM) and a kill
//! (SIGKILL) with the same endpoint after each restart. Only 127.0.0.1.

#[path = "common/etcd.rs"]
mod etcd;

use std::time::{Duration, Instant};

use etcd::{Etcd, Metrics};

#[test]
fn etcd_starts_stops_restarts_and_keeps_its_data() {
    let mut e = Etcd::start();
    assert!(e.is_running() && e.healthy());
    let endpoint = e.endpoint();

    let before = e.writes();
    e.put("/camgate/test/a", "first value");
    e.put("/camgate/test/b", "2");
    e.put("/camgate/test/b", "3");
    let out = e.etcdctl(&["del", "/camgate/test/b"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(e.writes() - before, 4.0, "three puts and a delete");
    assert_eq!(e.get("/camgate/test/a").as_deref(), Some("first value"));
    assert_eq!(e.get("/camgate/test/b"), None);
    e.put("/camgate/test/b", "4");

    // An orderly stop: nothing answers, then the same endpoint with the
    // same data.
    let took = e.stop();
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    assert!(!e.is_running() && !e.healthy());
    assert!(!e.etcdctl(&["get", "/camgate/test/a"]).status.success());
    e.start_again();
    assert_eq!(e.endpoint(), endpoint);
    assert_eq!(
        e.get_prefix("/camgate/test/"),
        [
            ("/camgate/test/a".to_owned(), "first value".to_owned()),
            ("/camgate/test/b".to_owned(), "4".to_owned())
        ]
    );

    // A crash: a put acknowledged before SIGKILL is still there.
    e.put("/camgate/test/c", "before the crash");
    e.kill();
    assert!(!e.is_running() && !e.healthy());
    e.start_again();
    assert_eq!(
        e.get("/camgate/test/c").as_deref(),
        Some("before the crash")
    );
}

#[test]
fn etcd_writes_per_second_from_its_metrics() {
    let e = Etcd::start();
    let endpoint = e.endpoint();
    // 10 puts a second from another thread for the measured second and a
    // half (15 writes, give or take one at either edge; fewer when etcdctl
    // starts slowly on a busy machine).
    let writer = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_millis(2500) {
            let out = std::process::Command::new(etcd::ETCDCTL)
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &endpoint,
                    "put",
                    "/camgate/rate",
                    &n.to_string(),
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            n += 1;
            let next = Duration::from_millis(100) * n;
            std::thread::sleep(next.saturating_sub(start.elapsed()));
        }
        n
    });
    std::thread::sleep(Duration::from_millis(500));
    let rate = e.writes_per_second(Duration::from_millis(1500));
    let n = writer.join().unwrap();
    assert!(n >= 20, "the writer managed only {n} puts");
    assert!(
        (5.0..=13.0).contains(&rate),
        "{rate} writes/s for 10 puts/s"
    );
    // Idle: no writes.
    assert_eq!(e.writes_per_second(Duration::from_millis(500)), 0.0);
}

#[test]
fn metrics_sum_every_label_set_of_a_metric() {
    let m = Metrics::parse(
        "# HELP etcd_mvcc_put_total Total number of puts seen by this member.\n\
         # TYPE etcd_mvcc_put_total counter\n\
         etcd_mvcc_put_total 7\n\
         etcd_mvcc_put_total_extra 100\n\
         etcd_mvcc_delete_total 2\n\
         etcd_mvcc_txn_total 1\n\
         grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\"} 5\n\
         grpc_server_handled_total{grpc_code=\"Unavailable\",grpc_method=\"Put\"} 1\n\
         not a sample\n",
    );
    assert_eq!(m.writes(), 10.0);
    assert_eq!(m.sum("grpc_server_handled_total"), 6.0);
    assert_eq!(m.sum("etcd_debugging_mvcc_put_total"), 0.0);
}
