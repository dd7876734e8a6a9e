mod common;

use std::time::Duration;

use nvplan::ioworker::{IoWorkerConfig, code};
use nvplan::sim::{NamespaceConfig, SimConfig};

#[test]
fn io_count_is_exact_and_data_verifies() {
    let r = common::rig(SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() });
    let ns = r.ctrl.namespace(1).unwrap();
    let w = ns.ioworker(IoWorkerConfig { io_count: 10_000, read_percentage: 50, region_end: vec![4096], ..Default::default() }).unwrap();
    let res = w.run();

    assert_eq!(res.error, 0, "{:?}", res.error_message);
    assert_eq!(res.io_count(), 10_000);
    let res = ns
        .ioworker(IoWorkerConfig { time: Some(Duration::from_secs(1)), read_percentage: 50, region_end: vec![4096], qdepth: 127, ..Default::default() })
        .unwrap()
        .run();
    println!("{} IOPS, {:?}", res.iops(), res.error_message);
    assert_eq!(res.error, code::SUCCESS);
}
