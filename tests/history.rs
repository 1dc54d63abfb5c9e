//! Versions from Git history (SPEC section 2), end to end: real repositories built with the
//! git CLI, the built binary run over them.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::git::TestRepo;
use serde_json::Value;

fn prompt(model: &str, template: &str) -> String {
    format!(
        "description: a prompt\nmodel: {model}\nparameters:\n  temperature: 0.2\nvariables:\n  x: {{type: string}}\ntemplate: \"{template} {{{{ x }}}}\"\ntests:\n  - name: first\n    vars: {{x: a}}\n    assert: [{{type: contains, value: a}}]\n"
    )
}

/// `list --all --format json` as (service/name) -> object.
fn list_all(repo: &TestRepo, extra: &[&str]) -> BTreeMap<String, Value> {
    let mut args = vec!["list", "--all"];
    args.extend(extra);
    let value = repo.json(&args);
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            (
                format!(
                    "{}/{}",
                    row["service"].as_str().unwrap_or(""),
                    row["name"].as_str().unwrap_or("")
                ),
                row.clone(),
            )
        })
        .collect()
}

/// `log --format json` as [(number, commit)].
fn log(repo: &TestRepo, prompt: &str) -> Vec<(u64, String)> {
    repo.json(&["log", prompt])
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| {
            (
                v["number"].as_u64().unwrap_or(0),
                v["commit"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn formatting_tests_description_and_comments_make_no_version() {
    let repo = TestRepo::new();
    repo.write(
        "prompts/billing/invoice.yaml",
        &prompt("gpt-4o", "Summarise"),
    );
    let c1 = repo.commit("add invoice");
    repo.write(
        "prompts/billing/invoice.yaml",
        "# reformatted, keys reordered, tests and description edited\ntemplate: Summarise {{ x }}\nvariables: {x: {type: string}}\nmodel: gpt-4o\nparameters: {temperature: 0.20}\ndescription: another text\ntests: []\n",
    );
    repo.commit("reformat");
    repo.write(
        "prompts/billing/invoice.yaml",
        &prompt("gpt-4o-mini", "Summarise"),
    );
    let c3 = repo.commit("swap model");
    repo.write("README.md", "unrelated\n");
    repo.commit("docs");
    assert_eq!(log(&repo, "invoice"), [(1, c1.clone()), (2, c3.clone())]);
    let list = list_all(&repo, &[]);
    let row = &list["billing/invoice"];
    assert_eq!(row["version"], 2);
    assert_eq!(row["commit"], c3.as_str());
    assert_eq!(row["created_by"], "Ada Lovelace");
    assert_eq!(row["archived"], false);
    assert_eq!(row["created_at"], "2023-11-14T22:15:20Z");
    let entries = repo.json(&["log", "billing/invoice"]);
    assert_eq!(entries[0]["message"], "add invoice\n");
    assert_eq!(entries[1]["author"], "Ada Lovelace");
    assert_eq!(entries[1]["time"], "2023-11-14T22:15:20Z");
}

#[test]
fn a_merged_pull_request_is_one_version() {
    let repo = TestRepo::new();
    repo.write("prompts/support/reply.yaml", &prompt("m", "v1"));
    let c1 = repo.commit("add");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    for text in ["v2", "v3", "v4"] {
        repo.write("prompts/support/reply.yaml", &prompt("m", text));
        repo.commit(&format!("wip {text}"));
    }
    repo.git(&["checkout", "-q", "main"]);
    repo.write("prompts/other/x.yaml", &prompt("m", "x"));
    repo.commit("unrelated on main");
    repo.git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request #1",
        "feature",
    ]);
    let merge = repo.head();
    assert_eq!(log(&repo, "reply"), [(1, c1), (2, merge)]);
    let entries = repo.json(&["log", "reply"]);
    assert_eq!(entries[1]["summary"], "Merge pull request #1");
}

#[test]
fn a_moved_file_keeps_its_versions() {
    let repo = TestRepo::new();
    repo.write("prompts/search/rewrite.yaml", &prompt("m", "one"));
    let c1 = repo.commit("add");
    std::fs::create_dir_all(repo.path().join("prompts/search/sub")).expect("mkdir");
    repo.git(&[
        "mv",
        "prompts/search/rewrite.yaml",
        "prompts/search/sub/rewrite.yml",
    ]);
    repo.commit("move");
    repo.write("prompts/search/sub/rewrite.yml", &prompt("m", "two"));
    let c3 = repo.commit("edit");
    // Renamed file, same identity through explicit name and service.
    repo.remove("prompts/search/sub/rewrite.yml");
    repo.write(
        "prompts/elsewhere/new_file_name.yaml",
        &format!("name: rewrite\nservice: search\n{}", prompt("m", "two")),
    );
    repo.commit("rename with explicit identity");
    assert_eq!(log(&repo, "search/rewrite"), [(1, c1), (2, c3)]);
    let list = list_all(&repo, &[]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        list["search/rewrite"]["path"],
        "prompts/elsewhere/new_file_name.yaml"
    );
    assert_eq!(list["search/rewrite"]["archived"], false);
}

#[test]
fn a_deleted_prompt_is_archived_and_a_restored_one_continues_its_numbering() {
    let repo = TestRepo::new();
    repo.write("prompts/docs/changelog.yaml", &prompt("m", "one"));
    repo.write("prompts/docs/keep.yaml", &prompt("m", "keep"));
    let c1 = repo.commit("add");
    repo.write("prompts/docs/changelog.yaml", &prompt("m", "two"));
    let c2 = repo.commit("edit");
    repo.remove("prompts/docs/changelog.yaml");
    repo.commit("delete");
    let visible = repo.json(&["list"]);
    assert_eq!(visible.as_array().map(Vec::len), Some(1), "{visible}");
    let all = list_all(&repo, &[]);
    assert_eq!(all["docs/changelog"]["archived"], true);
    assert_eq!(all["docs/changelog"]["version"], 2);
    // Restored unchanged: no new version.
    repo.write("prompts/docs/changelog.yaml", &prompt("m", "two"));
    repo.commit("restore");
    assert_eq!(list_all(&repo, &[])["docs/changelog"]["archived"], false);
    assert_eq!(log(&repo, "changelog"), [(1, c1.clone()), (2, c2.clone())]);
    // Deleted and restored changed: the next number.
    repo.remove("prompts/docs/changelog.yaml");
    repo.commit("delete again");
    repo.write("prompts/docs/changelog.yaml", &prompt("m", "three"));
    let c6 = repo.commit("restore changed");
    assert_eq!(log(&repo, "changelog"), [(1, c1), (2, c2), (3, c6)]);
}

#[test]
fn a_file_that_does_not_parse_in_history_is_reported_and_skipped() {
    let repo = TestRepo::new();
    repo.write("prompts/billing/dun.yaml", &prompt("m", "one"));
    let c1 = repo.commit("add");
    repo.write("prompts/billing/dun.yaml", "model: [broken\ntemplate: x\n");
    let broken = repo.commit("break it");
    repo.write("prompts/billing/dun.yaml", &prompt("m", "one"));
    repo.commit("fix it unchanged");
    repo.write("prompts/billing/dun.yaml", &prompt("m", "two"));
    let c4 = repo.commit("edit");
    assert_eq!(log(&repo, "dun"), [(1, c1), (2, c4)]);
    let (code, _, stderr) = repo.run(&["list"]);
    assert_eq!(code, 0);
    assert!(stderr.contains(&broken[..12]), "{stderr}");
    assert!(stderr.contains("prompts/billing/dun.yaml"), "{stderr}");
}

#[test]
fn non_ascii_paths_and_content_work() {
    let repo = TestRepo::new();
    repo.write(
        "prompts/café/résumé.yaml",
        &prompt("m", "Résumez en français — 日本語"),
    );
    let c1 = repo.commit("ajouter");
    repo.write(
        "prompts/café/résumé.yaml",
        &prompt("m", "Résumez brièvement — 日本語"),
    );
    let c2 = repo.commit("modifier ✓");
    assert_eq!(log(&repo, "café/résumé"), [(1, c1), (2, c2)]);
    let list = list_all(&repo, &[]);
    assert_eq!(list["café/résumé"]["path"], "prompts/café/résumé.yaml");
    assert_eq!(list["café/résumé"]["message"], "modifier ✓");
    let (code, stdout, _) = repo.run(&["show", "résumé@1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Résumez en français — 日本語"), "{stdout}");
}

#[test]
fn uncommitted_changes_are_the_next_version() {
    let repo = TestRepo::new();
    repo.write("prompts/support/reply.yaml", &prompt("m", "one"));
    repo.write("prompts/support/gone.yaml", &prompt("m", "gone"));
    repo.commit("add");
    // Formatting only: no new version.
    repo.write(
        "prompts/support/reply.yaml",
        &format!("# comment\n{}", prompt("m", "one")),
    );
    let list = list_all(&repo, &[]);
    assert_eq!(list["support/reply"]["version"], 1);
    assert_eq!(list["support/reply"]["uncommitted"], false);
    // A definition change: version 2, uncommitted; a new file: version 1, uncommitted.
    repo.write("prompts/support/reply.yaml", &prompt("m", "two"));
    repo.write("prompts/support/fresh.yaml", &prompt("m", "new"));
    repo.remove("prompts/support/gone.yaml");
    let list = list_all(&repo, &[]);
    assert_eq!(list["support/reply"]["version"], 2);
    assert_eq!(list["support/reply"]["committed_version"], 1);
    assert_eq!(list["support/reply"]["uncommitted"], true);
    assert_eq!(list["support/reply"]["commit"], Value::Null);
    assert_eq!(list["support/fresh"]["version"], 1);
    assert_eq!(list["support/fresh"]["uncommitted"], true);
    assert_eq!(list["support/gone"]["archived"], true);
    let entries = repo.json(&["log", "reply"]);
    assert_eq!(entries.as_array().map(Vec::len), Some(2));
    assert_eq!(entries[1]["uncommitted"], true);
    let (code, stdout, _) = repo.run(&["diff", "reply", "1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("-template: \"one {{ x }}\""), "{stdout}");
    assert!(stdout.contains("+template: \"two {{ x }}\""), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "no colour off a terminal: {stdout}"
    );
}

#[test]
fn a_shallow_clone_is_refused_with_the_fix() {
    let origin = TestRepo::new();
    for n in 0..3 {
        origin.write("prompts/a/b.yaml", &prompt("m", &format!("v{n}")));
        origin.commit("edit");
    }
    let clone = TestRepo::bare_folder();
    let url = format!("file://{}", origin.path().display());
    clone.git(&["clone", "-q", "--depth", "1", &url, "."]);
    let (code, _, stderr) = clone.run(&["list"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("shallow"), "{stderr}");
    assert!(stderr.contains("fetch-depth: 0"), "{stderr}");
    assert!(stderr.contains("git fetch --unshallow"), "{stderr}");
}

#[test]
fn empty_repository_unborn_branch_detached_head_and_a_late_prompts_folder() {
    let repo = TestRepo::new();
    // No commits at all: the working tree is version 1, uncommitted.
    repo.write("prompts/a/first.yaml", &prompt("m", "one"));
    let list = list_all(&repo, &[]);
    assert_eq!(list["a/first"]["version"], 1);
    assert_eq!(list["a/first"]["uncommitted"], true);
    repo.remove("prompts/a/first.yaml");
    // The prompts folder appears late in history.
    repo.write("README.md", "hello\n");
    repo.commit("readme");
    repo.write("src/main.rs", "fn main() {}\n");
    repo.commit("code");
    repo.write("prompts/a/first.yaml", &prompt("m", "one"));
    let c3 = repo.commit("prompts arrive");
    repo.write("prompts/a/first.yaml", &prompt("m", "two"));
    let c4 = repo.commit("edit");
    assert_eq!(log(&repo, "first"), [(1, c3.clone()), (2, c4)]);
    // Detached HEAD at the commit before.
    repo.git(&["checkout", "-q", "--detach", "HEAD~1"]);
    assert_eq!(log(&repo, "first"), [(1, c3)]);
    // An unborn branch: no history, the working tree shows as uncommitted.
    repo.git(&["checkout", "-q", "--orphan", "fresh"]);
    let list = list_all(&repo, &[]);
    assert_eq!(list["a/first"]["version"], 1);
    assert_eq!(list["a/first"]["uncommitted"], true);
}

#[test]
fn rev_reads_another_revision_and_a_bad_one_is_bad_input() {
    let repo = TestRepo::new();
    repo.write("prompts/a/p.yaml", &prompt("m", "one"));
    repo.commit("one");
    repo.git(&["tag", "v1"]);
    repo.write("prompts/a/p.yaml", &prompt("m", "two"));
    repo.commit("two");
    assert_eq!(list_all(&repo, &["--rev", "v1"])["a/p"]["version"], 1);
    assert_eq!(list_all(&repo, &[])["a/p"]["version"], 2);
    let (code, _, stderr) = repo.run(&["list", "--rev", "no-such-ref"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn the_cache_is_extended_and_a_stale_or_corrupt_one_is_rebuilt() {
    let repo = TestRepo::new();
    repo.write("prompts/a/p.yaml", &prompt("m", "one"));
    repo.write("prompts/a/q.yaml", &prompt("m", "q"));
    repo.commit("one");
    let cold = list_all(&repo, &[]);
    let cache_dir = repo.git_dir().join("promptctl");
    assert!(
        cache_dir.is_dir(),
        "the cache is written under .git/promptctl"
    );
    assert_eq!(cold, list_all(&repo, &[]), "warm equals cold");
    repo.write("prompts/a/p.yaml", &prompt("m", "two"));
    repo.commit("two");
    let warm = list_all(&repo, &[]);
    assert_eq!(warm["a/p"]["version"], 2);
    assert_eq!(warm, list_all(&repo, &["--no-cache"]));
    // A rewritten tip: the cached commit is no longer on the chain.
    repo.write("prompts/a/p.yaml", &prompt("m", "three"));
    repo.git(&["commit", "-q", "-a", "--amend", "-m", "two, amended"]);
    let amended = list_all(&repo, &[]);
    assert_eq!(amended["a/p"]["version"], 2);
    assert_eq!(amended["a/p"]["message"], "two, amended");
    assert_eq!(amended, list_all(&repo, &["--no-cache"]));
    // Corrupt caches are rebuilt, never trusted.
    for garbage in ["", "{not json", "promptctl-history 1 0000000000000000\n{}"] {
        for entry in std::fs::read_dir(&cache_dir).expect("cache dir") {
            std::fs::write(entry.expect("entry").path(), garbage).expect("corrupt");
        }
        assert_eq!(list_all(&repo, &[]), amended, "after writing {garbage:?}");
    }
    // A cache that is valid JSON with a wrong checksum (edited by hand) is not trusted.
    for entry in std::fs::read_dir(&cache_dir).expect("cache dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(
            &path,
            text.replace("\"archived\":false", "\"archived\":true"),
        )
        .expect("edit");
    }
    assert_eq!(list_all(&repo, &[]), amended);
}

#[test]
fn show_diff_and_render_read_old_versions() {
    let repo = TestRepo::new();
    repo.write("prompts/s/_partials/tone.j2", "Be kind.");
    repo.write(
        "prompts/s/p.yaml",
        "model: m\nvariables: {x: {type: string}}\nmessages:\n  - role: system\n    content: \"{% include 's/_partials/tone.j2' %}\"\n  - role: user\n    content: \"one {{ x }}\"\n",
    );
    repo.commit("one");
    repo.write("prompts/s/_partials/tone.j2", "Be terse.");
    repo.write(
        "prompts/s/p.yaml",
        "model: m2\nvariables: {x: {type: string}}\nmessages:\n  - role: system\n    content: \"{% include 's/_partials/tone.j2' %}\"\n  - role: user\n    content: \"two {{ x }}\"\n",
    );
    repo.commit("two");
    let (code, stdout, stderr) = repo.run(&["render", "p", "--version", "1", "--var", "x=X"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Be kind.") && stdout.contains("one X"),
        "{stdout}"
    );
    let (_, stdout, _) = repo.run(&["render", "p", "--var", "x=X"]);
    assert!(
        stdout.contains("Be terse.") && stdout.contains("two X"),
        "{stdout}"
    );
    let (code, stdout, _) = repo.run(&["show", "s/p@1"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("model: m\n") && stdout.contains("one {{ x }}"),
        "{stdout}"
    );
    let shown = repo.json(&["show", "p@2"]);
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["definition"]["model"], "m2");
    let (code, stdout, _) = repo.run(&["diff", "p", "1", "2"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("--- s/p@1") && stdout.contains("+++ s/p@2"),
        "{stdout}"
    );
    assert!(stdout.contains("-model: m\n+model: m2"), "{stdout}");
    let (_, coloured, _) = repo.run(&["diff", "p", "1", "2", "--color", "always"]);
    assert!(coloured.contains("\x1b[32m+model: m2"), "{coloured}");
    let (code, _, stderr) = repo.run(&["show", "p@9"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no version 9"), "{stderr}");
    let (code, _, _) = repo.run(&["show", "p@x"]);
    assert_eq!(code, 2);
}

#[test]
fn outside_git_list_works_from_the_working_tree() {
    let folder = TestRepo::bare_folder();
    folder.write("prompts/a/p.yaml", &prompt("m", "one"));
    let (code, stdout, stderr) = folder.run(&["list", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("not inside a Git repository"), "{stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(rows[0]["name"], "p");
    assert_eq!(rows[0]["version"], Value::Null);
    let (code, _, _) = folder.run(&["log", "p"]);
    assert_eq!(code, 2);
}

// ---------------------------------------------------------------------------------------
// The numbering checked against an independent implementation of SPEC section 2, on a
// generated history with every kind of edit.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
struct Gen {
    service: u64,
    index: usize,
    place: u64,
    model: u64,
    text: u64,
    temp: u64,
    test: u64,
    desc: u64,
    style: u64,
    present: bool,
    broken: bool,
}

impl Gen {
    fn path(&self) -> String {
        let name = format!("p{}", self.index);
        match self.place {
            0 => format!("prompts/s{}/{name}.yaml", self.service),
            1 => format!("prompts/s{}/sub/{name}.yaml", self.service),
            _ => format!("prompts/s{}/deep/er/{name}.yml", self.service),
        }
    }

    fn text(&self) -> String {
        if self.broken {
            return "model: [unclosed\ntemplate: {\n".to_owned();
        }
        let chat = self.index.is_multiple_of(3);
        let body = format!("v{} für {{{{ x }}}}", self.text);
        let test = format!("tests:\n  - name: t{}\n    vars: {{x: a}}\n", self.test);
        let desc = format!("description: d{}\n", self.desc);
        match (self.style, chat) {
            (0, false) => format!(
                "{desc}model: m{}\nparameters:\n  temperature: 0.{}\nvariables:\n  x: {{type: string}}\ntemplate: \"{body}\"\n{test}",
                self.model, self.temp
            ),
            (_, false) => format!(
                "# style {}\n{test}template: |-\n  {body}\nvariables: {{x: {{type: string}}}}\nparameters: {{temperature: 0.{}{}}}\nmodel: \"m{}\"\n{desc}",
                self.style,
                self.temp,
                "0".repeat(self.style as usize),
                self.model
            ),
            (0, true) => format!(
                "{desc}model: m{}\nparameters:\n  temperature: 0.{}\nvariables:\n  x: {{type: string}}\nmessages:\n  - role: system\n    content: sys\n  - role: user\n    content: \"{body}\"\n{test}",
                self.model, self.temp
            ),
            (_, true) => format!(
                "{test}messages: [{{role: system, content: sys}}, {{content: \"{body}\", role: user}}]\nmodel: m{}\n# style {}\nvariables: {{x: {{type: string}}}}\n{desc}parameters: {{temperature: 0.{}}}\n",
                self.model, self.style, self.temp
            ),
        }
    }
}

/// One random edit to one prompt, written to the working tree.
fn random_edit(repo: &TestRepo, rng: &mut Rng, prompts: &mut [Gen]) {
    let index = rng.below(prompts.len() as u64) as usize;
    let p = &mut prompts[index];
    if !p.present {
        if rng.below(10) < 6 {
            p.present = true;
            p.broken = false;
            if rng.below(2) == 0 {
                p.text += 1;
            }
            repo.write(&p.path(), &p.text());
        }
        return;
    }
    let old_path = p.path();
    p.broken = false;
    match rng.below(100) {
        0..25 => match rng.below(3) {
            0 => p.model += 1,
            1 => p.text += 1,
            _ => p.temp = (p.temp + 1) % 9 + 1,
        },
        25..40 => p.style = (p.style + 1) % 3,
        40..50 => p.test += 1,
        50..57 => p.desc += 1,
        57..67 => p.place = (p.place + 1 + rng.below(2)) % 3,
        67..75 => {
            p.present = false;
            repo.remove(&old_path);
            return;
        }
        75..80 => p.broken = true,
        _ => p.text += 1,
    }
    if p.path() != old_path {
        repo.remove(&old_path);
    }
    repo.write(&p.path(), &p.text());
}

/// The contents of `blobs`, read by one `git cat-file --batch`.
fn cat_blobs(repo: &TestRepo, blobs: &[String]) -> Vec<String> {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(repo.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git cat-file runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let ids = blobs.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(ids.as_bytes()));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read");
    writer.join().expect("writer").expect("written");
    assert!(child.wait().expect("git exits").success());
    // `ID TYPE SIZE\n` then SIZE bytes and a newline, per blob.
    let mut texts = Vec::new();
    let mut rest = &out[..];
    for _ in blobs {
        let header_end = rest.iter().position(|&b| b == b'\n').expect("header");
        let header = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        let size: usize = header
            .rsplit(' ')
            .next()
            .expect("size")
            .parse()
            .expect("size");
        let body = &rest[header_end + 1..header_end + 1 + size];
        texts.push(String::from_utf8_lossy(body).into_owned());
        rest = &rest[header_end + 1 + size + 1..];
    }
    texts
}

/// Per prompt the expected (version, commit) pairs, and whether it ends archived.
type ExpectedNumbering = (BTreeMap<String, Vec<(u64, String)>>, BTreeMap<String, bool>);

/// The independent implementation: parse every prompt file of every first-parent commit
/// into plain JSON and number the changes of (model, parameters, variables, template or
/// messages) per (service, name).
fn expected_versions(repo: &TestRepo) -> ExpectedNumbering {
    let commits = repo.git(&["log", "--first-parent", "--reverse", "--format=%H"]);
    let mut parsed: HashMap<String, Option<Value>> = HashMap::new();
    let mut versions: BTreeMap<String, Vec<(u64, String, Value)>> = BTreeMap::new();
    let mut archived: BTreeMap<String, bool> = BTreeMap::new();
    for commit in commits.lines() {
        let listing = repo.git(&["ls-tree", "-r", "-z", commit, "--", "prompts"]);
        let mut present: BTreeMap<String, Value> = BTreeMap::new();
        let files: Vec<(String, &str)> = listing
            .split('\0')
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let (meta, path) = entry.split_once('\t').expect("ls-tree line");
                (meta.split(' ').nth(2).expect("blob id").to_owned(), path)
            })
            .filter(|(_, path)| path.ends_with(".yaml") || path.ends_with(".yml"))
            .collect();
        let new_blobs: Vec<String> = files
            .iter()
            .map(|(blob, _)| blob.clone())
            .filter(|blob| !parsed.contains_key(blob))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for (blob, text) in new_blobs.iter().zip(cat_blobs(repo, &new_blobs)) {
            parsed.insert(blob.clone(), serde_saphyr::from_str::<Value>(&text).ok());
        }
        for (blob, path) in files {
            let value = parsed[&blob].clone();
            let Some(value) = value else { continue };
            let relative = path.strip_prefix("prompts/").expect("under prompts");
            let service = value["service"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| relative.split('/').next().unwrap_or("").to_owned());
            let stem = relative
                .rsplit('/')
                .next()
                .unwrap_or("")
                .rsplit_once('.')
                .map(|(s, _)| s)
                .unwrap_or("");
            let name = value["name"].as_str().unwrap_or(stem).to_owned();
            let empty = Value::Object(serde_json::Map::new());
            let definition = serde_json::json!({
                "model": value["model"],
                "parameters": value.get("parameters").cloned().unwrap_or(empty.clone()),
                "variables": value.get("variables").cloned().unwrap_or(empty),
                "template": value.get("template"),
                "messages": value.get("messages"),
            });
            present
                .entry(format!("{service}/{name}"))
                .or_insert(definition);
        }
        for (id, definition) in &present {
            let list = versions.entry(id.clone()).or_default();
            if list.last().is_none_or(|(_, _, last)| last != definition) {
                list.push((list.len() as u64 + 1, commit.to_owned(), definition.clone()));
            }
        }
        for id in versions.keys() {
            archived.insert(id.clone(), !present.contains_key(id));
        }
    }
    let versions = versions
        .into_iter()
        .map(|(id, list)| (id, list.into_iter().map(|(n, c, _)| (n, c)).collect()))
        .collect();
    (versions, archived)
}

#[test]
fn numbering_matches_an_independent_computation_on_a_generated_history() {
    let repo = TestRepo::new();
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut prompts: Vec<Gen> = (0..30)
        .map(|index| Gen {
            service: index as u64 % 5,
            index,
            place: 0,
            model: 0,
            text: 0,
            temp: 2,
            test: 0,
            desc: 0,
            style: 0,
            present: index % 4 != 3,
            broken: false,
        })
        .collect();
    repo.write("README.md", "generated\n");
    repo.commit("start");
    for p in prompts.iter().filter(|p| p.present) {
        repo.write(&p.path(), &p.text());
    }
    repo.commit("initial prompts");
    let mut commits = 0;
    let mut branch = 0;
    while commits < 200 {
        if rng.below(12) == 0 {
            branch += 1;
            let name = format!("feature-{branch}");
            repo.git(&["checkout", "-q", "-b", &name]);
            for _ in 0..1 + rng.below(3) {
                for _ in 0..1 + rng.below(2) {
                    random_edit(&repo, &mut rng, &mut prompts);
                }
                repo.commit(&format!("work on {name}"));
                commits += 1;
            }
            repo.git(&["checkout", "-q", "main"]);
            repo.git(&[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("Merge {name}"),
                &name,
            ]);
            repo.tick();
        } else {
            for _ in 0..1 + rng.below(3) {
                random_edit(&repo, &mut rng, &mut prompts);
            }
            repo.commit(&format!("commit {commits}"));
        }
        commits += 1;
    }
    for p in prompts.iter_mut().filter(|p| p.broken) {
        p.broken = false;
        repo.write(&p.path(), &p.text());
    }
    repo.commit("fix broken files");

    let (expected, archived) = expected_versions(&repo);
    assert!(expected.len() >= 25, "the generator makes most prompts");
    assert!(expected.values().any(|v| v.len() >= 5), "and many versions");
    assert!(archived.values().any(|a| *a), "and archives some");
    for use_cache in [true, false] {
        let flags: &[&str] = if use_cache { &[] } else { &["--no-cache"] };
        let list = list_all(&repo, flags);
        assert_eq!(
            list.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (id, versions) in &expected {
            let row = &list[id];
            let (number, commit) = versions.last().expect("a version");
            assert_eq!(row["version"].as_u64(), Some(*number), "{id}");
            assert_eq!(row["commit"].as_str(), Some(commit.as_str()), "{id}");
            assert_eq!(row["archived"].as_bool(), Some(archived[id]), "{id}");
        }
    }
    for (id, versions) in &expected {
        assert_eq!(&log(&repo, id), versions, "{id}");
    }

    // Packed with long delta chains (the walk then reads the pack itself, not through
    // libgit2), the history numbers the same, cold and from the cache.
    repo.git(&["repack", "-adfq", "--depth=50", "--window=250"]);
    for flags in [&["--no-cache"][..], &[]] {
        let list = list_all(&repo, flags);
        for (id, versions) in &expected {
            let (number, commit) = versions.last().expect("a version");
            assert_eq!(list[id]["version"].as_u64(), Some(*number), "packed: {id}");
            assert_eq!(
                list[id]["commit"].as_str(),
                Some(commit.as_str()),
                "packed: {id}"
            );
        }
    }
    for (id, versions) in &expected {
        assert_eq!(&log(&repo, id), versions, "packed: {id}");
    }
}

/// Every version number of a history of 1,200 prompts, as the library derives it (cold,
/// from loose objects, then from a pack with long delta chains), against the independent
/// implementation.
#[test]
fn every_number_matches_an_independent_computation_on_a_thousand_prompt_history() {
    let repo = TestRepo::new();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut prompts: Vec<Gen> = (0..1_200)
        .map(|index| Gen {
            service: index as u64 % 20,
            index,
            place: index as u64 % 3,
            model: 0,
            text: 0,
            temp: 2,
            test: 0,
            desc: 0,
            style: index as u64 % 3,
            present: index % 7 != 3,
            broken: false,
        })
        .collect();
    for p in prompts.iter().filter(|p| p.present) {
        repo.write(&p.path(), &p.text());
    }
    repo.commit("initial prompts");
    for commit in 0..60 {
        if commit % 15 == 7 {
            let name = format!("feature-{commit}");
            repo.git(&["checkout", "-q", "-b", &name]);
            for _ in 0..2 {
                for _ in 0..1 + rng.below(20) {
                    random_edit(&repo, &mut rng, &mut prompts);
                }
                repo.commit(&format!("work on {name}"));
            }
            repo.git(&["checkout", "-q", "main"]);
            repo.git(&[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("Merge {name}"),
                &name,
            ]);
            repo.tick();
        } else {
            for _ in 0..1 + rng.below(40) {
                random_edit(&repo, &mut rng, &mut prompts);
            }
            repo.commit(&format!("commit {commit}"));
        }
    }
    for p in prompts.iter_mut().filter(|p| p.broken) {
        p.broken = false;
        repo.write(&p.path(), &p.text());
    }
    repo.commit("fix broken files");

    let (expected, archived) = expected_versions(&repo);
    assert!(expected.len() > 1_000, "{} prompts", expected.len());
    assert!(expected.values().any(|v| v.len() >= 4), "and many versions");
    let derived = || {
        let config = promptctl::config::Config::discover(repo.path()).expect("config");
        let history =
            promptctl::history::History::load(&config, None, false).expect("history loads");
        history
            .prompts
            .values()
            .map(|prompt| {
                let versions: Vec<(u64, String)> = prompt
                    .versions
                    .iter()
                    .map(|version| {
                        let commit = version.commit.as_ref().expect("committed");
                        (u64::from(version.number), commit.id.clone())
                    })
                    .collect();
                (prompt.id.to_string(), (versions, prompt.archived))
            })
            .collect::<BTreeMap<_, _>>()
    };
    for packed in [false, true] {
        if packed {
            repo.git(&["repack", "-adfq", "--depth=50", "--window=100"]);
        }
        let derived = derived();
        assert_eq!(
            derived.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (id, versions) in &expected {
            assert_eq!(&derived[id].0, versions, "{id} (packed: {packed})");
            assert_eq!(
                derived[id].1, archived[id],
                "{id} archived (packed: {packed})"
            );
        }
    }
}
