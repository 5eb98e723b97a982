//! The device profiles shipped in `deploy/profiles/`, compiled in.

/// The profiles shipped in `deploy/profiles/`, compiled in so the demo and the simulator run
/// anywhere.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("elevator-box-v1", include_str!("../../deploy/profiles/elevator-box-v1.toml")),
    ("boiler-ctl-v1", include_str!("../../deploy/profiles/boiler-ctl-v1.toml")),
    ("water-meter-v1", include_str!("../../deploy/profiles/water-meter-v1.toml")),
    ("charging-pile-dc-v1", include_str!("../../deploy/profiles/charging-pile-dc-v1.toml")),
    ("charging-pile-ac-v1", include_str!("../../deploy/profiles/charging-pile-ac-v1.toml")),
    ("boiler-ctl-v2", include_str!("../../deploy/profiles/boiler-ctl-v2.toml")),
];
