//! The README's "Project layout" table names every top-level module of `src/` and every
//! top-level folder of the repository, so a newcomer finds each one there.

use std::path::Path;

#[test]
fn the_layout_table_lists_every_module_and_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split("## Project layout")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a Project layout section");
    // Every `path` in the table's first column.
    let paths: Vec<&str> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| ")?.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    let listed = |name: &str| paths.iter().any(|p| *p == name || p.starts_with(name));
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let path = if entry.path().is_dir() {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        if !listed(&path) {
            missing.push(path);
        }
    }
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        // Hidden folders and the build output are not the project's layout.
        if entry.path().is_dir() && !name.starts_with('.') && name != "target" {
            let path = format!("{name}/");
            if !listed(&path) {
                missing.push(path);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the README's layout table lacks {missing:?}"
    );
}
