//! The device profiles shipped in `deploy/profiles/`, compiled in so the gateway's demo and
//! simulator, ingest and `rules check` all read the same ones without a profiles folder.

/// Profile name (its file's stem) and TOML text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("elevator-box-v1", include_str!("../../deploy/profiles/elevator-box-v1.toml")),
    ("boiler-ctl-v1", include_str!("../../deploy/profiles/boiler-ctl-v1.toml")),
    ("water-meter-v1", include_str!("../../deploy/profiles/water-meter-v1.toml")),
    ("charging-pile-dc-v1", include_str!("../../deploy/profiles/charging-pile-dc-v1.toml")),
    ("charging-pile-ac-v1", include_str!("../../deploy/profiles/charging-pile-ac-v1.toml")),
    ("boiler-ctl-v2", include_str!("../../deploy/profiles/boiler-ctl-v2.toml")),
];
