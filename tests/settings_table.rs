//! The README's settings table is exactly `ml-serving serve`'s settings: every environment
//! variable, its flag and its default, read from the clap definition itself (not `--help` text).

use clap::CommandFactory;
use ml_serving::cli::Cli;

struct Row {
    var: String,
    flag: String,
    default: String,
}

fn readme_rows() -> Vec<Row> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("<!-- settings-table -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /settings-table -->").next())
        .expect("the README has a settings table");
    table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let plain = |cell: &str| cell.trim_matches('`').to_string();
            Row {
                var: plain(cells[1]),
                flag: plain(cells[2]),
                default: plain(cells[3]),
            }
        })
        .collect()
}

#[test]
fn the_readme_settings_table_is_the_serve_command() {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve subcommand");
    let rows = readme_rows();
    let mut from_clap = Vec::new();
    for arg in serve.get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        let var = var.to_string_lossy().into_owned();
        let flag = format!("--{}", arg.get_long().expect("settings have a long flag"));
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let row = rows
            .iter()
            .find(|r| r.var == var)
            .unwrap_or_else(|| panic!("{var} is a setting but not in the README's table"));
        assert_eq!(row.flag, flag, "{var}: the README names another flag");
        match default.as_slice() {
            [] => assert!(
                !row.default
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit()),
                "{var} has no default but the README says {:?}",
                row.default
            ),
            [value] if value == "false" => {
                assert_eq!(row.default, "off", "{var}: the default is off")
            }
            [value] => assert!(
                row.default == *value || row.default.starts_with(&format!("{value} ")),
                "{var}: the default is {value:?}, the README says {:?}",
                row.default
            ),
            more => panic!("{var}: several defaults {more:?}"),
        }
        from_clap.push(var);
    }
    for row in &rows {
        assert!(
            from_clap.contains(&row.var),
            "the README lists {} but serve has no such setting",
            row.var
        );
    }
}
