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

#[test]
fn a_power_switch_that_does_not_parse_exits_2_and_lists_the_kinds() {
    let o = nvplan().args(["validate", "plans/quickstart.yaml", "--power", "relay:3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--power relay:3") && err.contains("unknown power switch `relay`") && err.contains("quarch:HOST"), "{err}");
}

#[test]
fn a_power_cycle_on_a_drive_without_a_switch_is_refused_before_the_drive_is_opened() {
    let o = nvplan().args(["validate", "plans/power-cycle-dirty.yaml", "--target", "vfio:0000:99:00.0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with("plans/power-cycle-dirty.yaml:26:18: power_cycle: a power cycle needs a power switch"), "{err}");
    assert!(first.contains("--power command:off=CMD,on=CMD") && first.contains("docs/power.md"), "{err}");
    assert!(!err.contains("no PCI function"), "the drive was not looked for: {err}");
}
