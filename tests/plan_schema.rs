//! `schema/plan.schema.json` is what `nvplan schema` prints.

#[test]
fn committed_schema_matches_the_plan_model() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/plan.schema.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = serde_json::to_string_pretty(&nvplan::plan::schema()).unwrap() + "\n";
    assert!(
        committed == current,
        "schema/plan.schema.json is out of date with src/plan/model.rs; regenerate it with `cargo run -- schema > schema/plan.schema.json`"
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_nvplan")).arg("schema").output().unwrap();
    assert!(o.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed, nvplan::plan::schema());
}
