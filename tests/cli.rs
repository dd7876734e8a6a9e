//! The command line end to end.

use std::process::Command;

fn nvplan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nvplan"))
}

#[test]
fn smoke_passes_on_the_simulator_and_leaves_a_summary() {
    let out = std::env::temp_dir().join(format!("nvplan-smoke-{}", std::process::id()));
    let st = nvplan().args(["smoke", "--size", "4MiB", "--target", "sim:ns=256MiB,lba=4096", "--out"]).arg(&out).status().unwrap();
    assert!(st.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(v["outcome"], "pass");
    assert_eq!(v["lba_size"], 4096);
    assert_eq!(v["bytes_written"], 4 << 20);
    assert_eq!(v["miscompares"], 0);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_target_exits_2_and_names_the_option() {
    let o = nvplan().args(["smoke", "--target", "sim:lba=520"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("lba=520") && err.contains("512 and 4096"), "{err}");
    let o = nvplan().args(["smoke", "--size", "lots"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
