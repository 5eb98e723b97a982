use super::*;

fn options(name: &str) -> SheetOptions {
    SheetOptions {
        kind: "boiler".into(),
        name: name.into(),
        description: None,
        max_registers: Some(64),
        max_bits: None,
        max_gap: Some(8),
    }
}

const SHEET: &str = include_str!("../../deploy/profiles/sheets/boiler-ctl-v2.csv");

/// The shipped sheet imports, without a bad row, to the shipped profile made from it.
#[test]
fn the_example_sheet_gives_the_shipped_profile() {
    let imported = import(SHEET, &options("boiler-ctl-v2")).unwrap();
    assert!(imported.errors.is_empty(), "{:?}", imported.errors);
    let mut shipped = Profile::built_in("boiler-ctl-v2").unwrap();
    // The shipped file's description is the one `--description` gave.
    shipped.description = None;
    assert_eq!(imported.profile, shipped);
    let text = crate::profile_toml::to_toml(&imported.profile, "from the sheet");
    assert_eq!(Profile::parse("boiler-ctl-v2", "out.toml", &text).unwrap(), imported.profile);
    let p = &imported.profile;
    let get = |name: &str| p.points.iter().find(|q| q.name == name).unwrap();
    assert_eq!((get("pressure_mpa").table, get("pressure_mpa").address), (Table::Holding, 100));
    assert_eq!(get("pressure_mpa").data_type, DataType::F32);
    assert_eq!(get("water_temp_c").address, 102, "hex 0x0066");
    assert_eq!((get("outlet_temp_c").table, get("outlet_temp_c").address), (Table::Input, 0));
    assert_eq!((get("burner_on").table, get("burner_on").address), (Table::Coil, 0));
    assert_eq!((get("flame_detected").table, get("flame_detected").address), (Table::Discrete, 0));
    assert_eq!(get("medium_type").field, Some(BitRange { low: 4, high: 7 }));
    assert_eq!(get("alarm_bits").bits.len(), 5);
    assert_eq!(get("model_name").length, Some(8));
    assert_eq!(get("controller_date").interval, Some(Duration::from_secs(3600)));
}

#[test]
fn every_bad_row_is_reported_by_line_and_column_and_left_out() {
    let sheet = "\
# a comment
Name, Address, Type, Table, Bits, Codes, Order, Length
good,40001,u16,,,,,
bad_type,40002,flaot,,,,,
,40003,u16,,,,,
bad_address,50001,u16,,,,,
bad_hex,0x1G,u16,holding,,,,
bad_field,40010,bitfield,,9..2,,,
bad_codes,40011,u16,,,1=a;x,,
good,40012,u16,,,,,
short_string,40020,string,,,,,
swapped_text,40030,string,,,,CDAB,4
bit_twice,40040,u16,,0=good,,,
too_many,40041,u16,,,,,,extra
second,40050,u16,,,,,
";
    let imported = import(sheet, &options("t")).unwrap();
    let errors: Vec<String> = imported.errors.iter().map(|e| e.to_string()).collect();
    let want = [
        "line 4, column `type`: unknown type `flaot`",
        "line 5, column `name`: `` is not a point name",
        "line 6, column `address`: `50001` is not a Modicon reference",
        "line 7, column `address`: `0x1G` is not a hex address",
        "line 8, column `bits`: bit range `9..2`: the low bit comes first",
        "line 9, column `codes`: `x` is not NUMBER=name",
        "line 10, column `name`: `good` is already the name of line 3",
        "line 11, column `length`: a string needs length",
        "line 12, column `order`: order CDAB swaps words",
        "line 13, column `bits`: `good` is already the name of line 3",
        "line 14, column `-`: 9 cells where the header has 8",
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\n  wanted {want}");
    }
    let names: Vec<&str> = imported.profile.points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["good", "second"]);
}

#[test]
fn a_bad_header_stops_the_import() {
    let err = import("name,adress,type\n", &options("t")).unwrap_err().to_string();
    assert!(err.starts_with("line 1: unknown column `adress`"), "{err}");
    let err = import("name,type\n", &options("t")).unwrap_err().to_string();
    assert_eq!(err, "line 1: no column `address` (required: name, address, type)");
}

#[test]
fn addresses_in_every_notation() {
    assert_eq!(address("", "40001"), Ok((Table::Holding, 0)));
    assert_eq!(address("", "400101"), Ok((Table::Holding, 100)));
    assert_eq!(address("", "465536"), Ok((Table::Holding, 65535)));
    assert_eq!(address("", "30010"), Ok((Table::Input, 9)));
    assert_eq!(address("", "10001"), Ok((Table::Discrete, 0)));
    assert_eq!(address("", "00017"), Ok((Table::Coil, 16)));
    assert_eq!(address("holding", "40001"), Ok((Table::Holding, 40001)), "with a table, decimal is literal");
    assert_eq!(address("Input", "0x0064"), Ok((Table::Input, 100)));
    assert!(address("", "0x0064").unwrap_err().contains("needs a table"));
    assert!(address("", "40000").unwrap_err().contains("counts from 1"));
    assert!(address("", "100").unwrap_err().contains("not a Modicon reference"));
    assert!(address("holding", "70000").unwrap_err().contains("above 65535"));
    assert!(address("registers", "1").unwrap_err().contains("table `registers`"));
    assert_eq!(data_type("FLOAT32"), Ok(DataType::F32));
    assert_eq!(data_type("dword"), Ok(DataType::U32));
    assert_eq!(data_type("bcd32"), Ok(DataType::Bcd32));
}
