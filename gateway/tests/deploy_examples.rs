//! Every example gateway config shipped in deploy/ loads, validates and plans.

use gateway::GatewayConfig;

#[test]
fn the_example_site_config_loads_and_plans() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.toml");
    let cfg = GatewayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let lines = cfg.build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lines.len(), 3);
    let devices: usize = lines.iter().map(|l| l.devices.len()).sum();
    assert_eq!(devices, 4);
}
