//! Every contract case runs: each `pub async fn <case>(b: &TestBackend)` of a port's module
//! (`src/contract/<port>.rs`, or every file of `src/contract/<port>/`) must be listed in that
//! port's `<port>_contract!` macro. A case left out of the list would compile and silently
//! never run on any backend; this test fails naming it.
//!
//! The listed-but-undefined direction needs no check: the macro's expansion would not compile.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The contract directory of this crate.
fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/contract")
}

/// The Rust sources of one port: its file, or every file of its directory.
fn port_sources(port_path: &Path) -> Vec<(PathBuf, String)> {
    let files: Vec<PathBuf> = if port_path.is_dir() {
        let mut files: Vec<PathBuf> = fs::read_dir(port_path)
            .expect("read port directory")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        files
    } else {
        vec![port_path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f).expect("read port source");
            (f, text)
        })
        .collect()
}

/// The names of the case functions in `source`: `pub async fn NAME(b: &TestBackend)` at the
/// start of a line, its argument list on one line or wrapped (helpers are private or take
/// other arguments).
fn cases_in(source: &str) -> Vec<String> {
    source
        .match_indices("pub async fn ")
        .filter(|(at, _)| *at == 0 || source[..*at].ends_with('\n'))
        .filter_map(|(at, prefix)| {
            let rest = &source[at + prefix.len()..];
            let (name, after) = rest.split_once('(')?;
            let (args, _) = after.split_once(')')?;
            let args: String = args.chars().filter(|c| !c.is_whitespace()).collect();
            (args.trim_end_matches(',') == "b:&TestBackend").then(|| name.trim().to_owned())
        })
        .collect()
}

/// The case names listed in `macro_rules! <port>_contract`: the identifiers of the bracketed
/// list passed to `__contract_cases!`.
fn listed_in(source: &str, port: &str) -> Option<BTreeSet<String>> {
    let start = source.find(&format!("macro_rules! {port}_contract"))?;
    let body = &source[start..];
    let open = body.find("__contract_cases!")?;
    let list = &body[open..];
    let from = list.find('[')? + 1;
    let to = from + list[from..].find(']')?;
    Some(
        list[from..to]
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
    )
}

/// The ports: every module of `src/contract` but the shared fixtures.
fn ports() -> Vec<(String, PathBuf)> {
    let mut ports: Vec<(String, PathBuf)> = fs::read_dir(contract_dir())
        .expect("read src/contract")
        .map(|e| e.expect("directory entry").path())
        .filter_map(|p| {
            let name = if p.is_dir() {
                p.file_name()?.to_str()?.to_owned()
            } else {
                p.file_stem()?.to_str()?.to_owned()
            };
            let module = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
            (module && name != "mod" && name != "fixtures").then_some((name, p))
        })
        .collect();
    ports.sort();
    ports
}

#[test]
fn every_contract_case_is_listed_in_its_ports_macro() {
    let ports = ports();
    assert!(
        ports.iter().any(|(name, _)| name == "checkpoint"),
        "the checkpoint port was not found under {}",
        contract_dir().display()
    );
    let mut missing = Vec::new();
    for (port, path) in &ports {
        let sources = port_sources(path);
        let listed = sources
            .iter()
            .find_map(|(_, text)| listed_in(text, port))
            .unwrap_or_else(|| panic!("no `{port}_contract!` case list under {}", path.display()));
        let mut cases = 0;
        for (file, text) in &sources {
            for case in cases_in(text) {
                cases += 1;
                if !listed.contains(&case) {
                    missing.push(format!("{port}::{case} ({})", file.display()));
                }
            }
        }
        assert!(cases > 0, "no cases found for port {port}");
    }
    assert!(
        missing.is_empty(),
        "contract cases missing from their port's macro list (they never run):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scan_finds_cases_and_lists() {
    let source = "pub async fn alpha(b: &TestBackend) {}\n\
                  async fn helper(b: &TestBackend) {}\n\
                  pub async fn beta(b: &TestBackend) {}\n\
                  pub async fn a_case_with_a_name_long_enough_to_wrap(\n    b: &TestBackend,\n) {}\n\
                  pub async fn fixture(b: &TestBackend, n: u8) {}\n\
                  macro_rules! demo_contract { ($f:path) => { \
                  $crate::__contract_cases!($f, demo, [alpha, gamma,]); }; }";
    assert_eq!(
        cases_in(source),
        ["alpha", "beta", "a_case_with_a_name_long_enough_to_wrap"]
    );
    let listed = listed_in(source, "demo").expect("a list");
    assert_eq!(
        listed,
        BTreeSet::from(["alpha".to_owned(), "gamma".to_owned()])
    );
    assert!(listed_in(source, "other").is_none());
}
