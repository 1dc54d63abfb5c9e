//! Fuzz-style property test of the loader and `check`: random bytes and mutated example
//! prompt files must never panic and never take long.
//!
//! A seeded xorshift generator keeps runs reproducible without a heavy dependency; set
//! `PROMPTCTL_FUZZ_SEED` to explore other inputs and `PROMPTCTL_FUZZ_CASES` for more cases.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promptctl::check::check;
use promptctl::repo::Snapshot;

/// A small, seeded pseudo-random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every file of the repository's example `prompts/` folder, relative to it.
fn example_files() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read prompts folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let relative = path.strip_prefix(&root).expect("inside").to_path_buf();
                files.push((relative, bytes));
            }
        }
    }
    files.sort();
    files
}

/// Fragments that stress YAML and Jinja parsing.
const INSERTS: &[&str] = &[
    "&a ",
    "*a",
    "*b ",
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    "- ",
    "\n  ",
    "\t",
    "\"",
    "'",
    "|",
    ">",
    "!!binary ",
    "!tag ",
    "? ",
    "---\n",
    "...\n",
    "#",
    "{{",
    "}}",
    "{%",
    "%}",
    "{% for x in range(99999) %}",
    "{% endfor %}",
    "{% include \"../x\" %}",
    "{% include \"shared/_partials/json_output.j2\" %}",
    "<<: *a\n",
    "\u{feff}",
    "\0",
    "é",
    "\r\n",
    "~",
    "null",
    "1e999",
    "-.inf",
    "0x1F",
];

/// One random mutation of `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    match rng.below(8) {
        // Flip a bit.
        0 if len > 0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        // Truncate.
        1 if len > 0 => bytes.truncate(rng.below(len)),
        // Duplicate a line.
        2 => {
            let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            let i = rng.below(lines.len());
            let mut out: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
            let copies = 1 + rng.below(3);
            for _ in 0..copies {
                out.insert(i, lines[i].to_vec());
            }
            *bytes = out.join(&b'\n');
        }
        // Change a line's indentation.
        3 => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let i = rng.below(lines.len());
            let line = &mut lines[i];
            if rng.below(2) == 0 {
                let extra = 1 + rng.below(6);
                line.splice(0..0, std::iter::repeat_n(b' ', extra));
            } else {
                let strip = line
                    .iter()
                    .take_while(|&&b| b == b' ')
                    .count()
                    .min(1 + rng.below(4));
                line.drain(0..strip);
            }
            *bytes = lines.join(&b'\n');
        }
        // Insert a nasty fragment.
        4 | 5 => {
            let at = if len == 0 { 0 } else { rng.below(len + 1) };
            let fragment = rng.pick(INSERTS).as_bytes();
            bytes.splice(at..at, fragment.iter().copied());
        }
        // Delete a range.
        6 if len > 1 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(40)).min(len);
            bytes.drain(start..end);
        }
        // Swap two lines.
        _ => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let a = rng.below(lines.len());
            let b = rng.below(lines.len());
            lines.swap(a, b);
            *bytes = lines.join(&b'\n');
        }
    }
}

/// Loads and checks `files`, failing when it takes too long (a panic fails on its own).
fn load_and_check(case: usize, files: Vec<(PathBuf, Vec<u8>)>) {
    let started = Instant::now();
    let snapshot = Snapshot::from_files(Path::new("prompts"), files);
    let report = check(&snapshot);
    // Touch the result so nothing is optimised away, and render every finding.
    for diagnostic in &report.diagnostics {
        assert!(!diagnostic.message.is_empty(), "case {case}: empty message");
        let _ = promptctl::cli::output::render_diagnostic(diagnostic, false);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "case {case} took {elapsed:?}"
    );
}

#[test]
fn random_bytes_never_panic() {
    let seed = env_number("PROMPTCTL_FUZZ_SEED", 0x5eed_0001);
    let cases = env_number("PROMPTCTL_FUZZ_CASES", 300) as usize;
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let len = rng.below(600);
        let bytes: Vec<u8> = match rng.below(3) {
            // Any bytes.
            0 => (0..len).map(|_| rng.next() as u8).collect(),
            // Printable ASCII and YAML punctuation: gets further into the parser.
            1 => (0..len)
                .map(|_| *rng.pick(b"abcxyz019 :-[]{}&*!|>'\"#\n\n  \t?,%@`~"))
                .collect(),
            // Random fragments glued together.
            _ => (0..len / 8)
                .flat_map(|_| rng.pick(INSERTS).as_bytes().to_vec())
                .collect(),
        };
        let name = if case % 2 == 0 {
            "svc/random.yaml"
        } else {
            "svc/_partials/random.j2"
        };
        load_and_check(case, vec![(PathBuf::from(name), bytes)]);
    }
}

#[test]
fn mutated_example_prompts_never_panic() {
    let seed = env_number("PROMPTCTL_FUZZ_SEED", 0x5eed_0002);
    let cases = env_number("PROMPTCTL_FUZZ_CASES", 300) as usize;
    let originals = example_files();
    assert!(originals.len() > 5, "the example prompts are there");
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let mut files = originals.clone();
        let target = rng.below(files.len());
        let mutations = 1 + rng.below(4);
        for _ in 0..mutations {
            mutate(&mut rng, &mut files[target].1);
        }
        load_and_check(case, files);
    }
}

#[test]
fn pathological_inputs_are_refused_quickly() {
    let bomb = {
        let mut text = String::from(
            "model: m\ntemplate: hi\nparameters:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 1..30 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
        }
        text.into_bytes()
    };
    let deep_flow = format!(
        "model: m\ntemplate: hi\nparameters:\n  x: {}\n",
        "[".repeat(100_000)
    )
    .into_bytes();
    let deep_block: Vec<u8> = {
        let mut text = String::from("model: m\ntemplate: hi\nparameters:\n");
        for depth in 1..400 {
            text.push_str(&" ".repeat(depth));
            text.push_str("k:\n");
        }
        text.into_bytes()
    };
    let deep_seq = format!(
        "model: m\ntemplate: hi\nparameters:\n  x:\n{}\n",
        (1..300)
            .map(|d| format!("{}- ", " ".repeat(2 * d)))
            .collect::<Vec<_>>()
            .join("\n")
    )
    .into_bytes();
    let huge = vec![b'a'; 2 * 1024 * 1024];
    let deep_template = format!(
        "model: m\ntemplate: \"{}{}\"\n",
        "{% if true %}".repeat(5_000),
        "{% endif %}".repeat(5_000)
    )
    .into_bytes();
    let deep_expression = format!(
        "model: m\ntemplate: \"{{{{ {}1{} }}}}\"\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    )
    .into_bytes();
    for (case, bytes) in [
        bomb,
        deep_flow,
        deep_block,
        deep_seq,
        huge,
        deep_template,
        deep_expression,
    ]
    .into_iter()
    .enumerate()
    {
        load_and_check(case, vec![(PathBuf::from("svc/p.yaml"), bytes)]);
    }
}
