//! `config/config.schema.json` is generated from the config types and must stay current.
//! Regenerate with `KWS_UPDATE_SCHEMA=1 cargo test --test config_schema`.

use kafka_webhook_sidecar::config::Config;

#[test]
fn checked_in_schema_matches_the_config_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.schema.json");
    let generated = Config::json_schema();
    if std::env::var_os("KWS_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).expect("write schema");
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "config/config.schema.json is out of date; run: KWS_UPDATE_SCHEMA=1 cargo test --test config_schema"
    );
}

#[test]
fn schema_describes_every_section_and_rejects_unknown_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(&Config::json_schema()).expect("valid JSON");
    let properties = schema["properties"]
        .as_object()
        .expect("top-level properties");
    for section in ["kafka", "delivery", "shutdown", "admin", "log"] {
        assert!(properties.contains_key(section), "schema lacks {section}");
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(required, vec!["kafka", "delivery"]);
}
