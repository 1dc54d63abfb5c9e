//! The registry's listings over `promptctl serve`, against a real PostgreSQL: `GET
//! /v1/prompts` paged with a cursor and filtered, `GET /v1/prompts/{service}/{name}/versions`
//! paged the same way, hostile paging input answered with a JSON 400 or 422, and the
//! descriptions a sync publishes (and a database synced before them).

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::db::TestDb;
use common::git::TestRepo;
use common::server::{READ, RUN, Server, prompt, sync};
use serde_json::Value;

const SUPPORT_PROMPTS: usize = 53;

/// billing/invoice (3 versions, a description, pinned in production and staging),
/// billing/refund (1 version) and support/reply_00..reply_52 (reply_07 pinned in
/// production): 55 prompts, more than one default page.
fn registry() -> (TestDb, TestRepo) {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "default_provider = \"echo\"\n");
    let invoice = |template: &str| format!("description: Bills customers\n{}", prompt(template));
    repo.write("prompts/billing/invoice.yaml", &invoice("first"));
    repo.write("prompts/billing/refund.yaml", &prompt("refund"));
    for index in 0..SUPPORT_PROMPTS {
        repo.write(
            &format!("prompts/support/reply_{index:02}.yaml"),
            &prompt("reply"),
        );
    }
    repo.commit("v1");
    repo.write("prompts/billing/invoice.yaml", &invoice("second"));
    repo.commit("v2");
    repo.write("prompts/billing/invoice.yaml", &invoice("third"));
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, model: gpt-4o-mini}\n    staging: {version: latest}\n  reply_07:\n    production: {version: 1}\n",
    );
    repo.commit("v3");
    sync(&repo, &db);
    (db, repo)
}

fn start(repo: &TestRepo, db: &TestDb) -> Server {
    Server::start(
        repo,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &[],
    )
}

/// Every page of `path` (which holds a `?`), `field` being the entries' array; the number
/// of pages too.
fn all_pages(server: &Server, path: &str, field: &str) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..=100 {
        let url = match &cursor {
            Some(cursor) => format!("{path}&cursor={cursor}"),
            None => path.to_owned(),
        };
        let reply = server.get(&url, Some(READ));
        assert_eq!(reply.status, 200, "{url}: {}", reply.text);
        let body = reply.json();
        entries.extend(body[field].as_array().expect("entries").iter().cloned());
        match &body["next_cursor"] {
            Value::Null => return (entries, pages),
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor: {other}"),
        }
    }
    panic!("{path}: more than 100 pages")
}

fn names(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["service"].as_str().expect("a service"),
                e["name"]
            )
        })
        .map(|n| n.replace('"', ""))
        .collect()
}

#[test]
fn prompts_are_listed_page_by_page_with_filters() {
    let (db, repo) = registry();
    let server = start(&repo, &db);

    // The default page is 50; the second and last page has the other 5, in (service, name)
    // order, and says so with a null cursor.
    let first = server.get("/v1/prompts", Some(READ));
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.json();
    assert_eq!(first["prompts"].as_array().map(Vec::len), Some(50));
    assert!(first["next_cursor"].is_string(), "{first}");
    let (every, pages) = all_pages(&server, "/v1/prompts?", "prompts");
    assert_eq!(pages, 2);
    let mut expected = vec!["billing/invoice".to_owned(), "billing/refund".to_owned()];
    expected.extend((0..SUPPORT_PROMPTS).map(|i| format!("support/reply_{i:02}")));
    assert_eq!(names(&every), expected);
    let (every, pages) = all_pages(&server, "/v1/prompts?limit=100", "prompts");
    assert_eq!((every.len(), pages), (55, 1));
    // A run token lists too.
    assert_eq!(server.get("/v1/prompts?limit=1", Some(RUN)).status, 200);

    // An entry: latest version, model, description, update time, environments.
    let invoice = &every[0];
    assert_eq!(invoice["latest_version"], 3);
    assert_eq!(invoice["model"], "gpt-4o");
    assert_eq!(invoice["description"], "Bills customers");
    assert!(
        invoice["updated_at"]
            .as_i64()
            .is_some_and(|t| t > 1_000_000_000),
        "{invoice}"
    );
    assert_eq!(invoice["archived"], false);
    assert_eq!(invoice["environments"]["production"]["version"], 1);
    assert_eq!(
        invoice["environments"]["production"]["model"],
        "gpt-4o-mini"
    );
    assert_eq!(invoice["environments"]["staging"]["version"], Value::Null);
    assert_eq!(every[1]["description"], Value::Null);
    assert_eq!(every[1]["environments"], serde_json::json!({}));

    // Filters, alone and with paging.
    let (support, pages) = all_pages(&server, "/v1/prompts?service=support&limit=7", "prompts");
    assert_eq!((support.len(), pages), (SUPPORT_PROMPTS, 8));
    assert!(support.iter().all(|p| p["service"] == "support"));
    let (production, _) = all_pages(&server, "/v1/prompts?env=production", "prompts");
    assert_eq!(names(&production), ["billing/invoice", "support/reply_07"]);
    let (staging, _) = all_pages(&server, "/v1/prompts?env=staging", "prompts");
    assert_eq!(names(&staging), ["billing/invoice"]);
    let (found, pages) = all_pages(&server, "/v1/prompts?q=REPLY_0&limit=3", "prompts");
    assert_eq!(pages, 4);
    assert_eq!(
        names(&found),
        (0..10)
            .map(|i| format!("support/reply_{i:02}"))
            .collect::<Vec<_>>()
    );
    let (found, _) = all_pages(&server, "/v1/prompts?q=VoIc&service=billing", "prompts");
    assert_eq!(names(&found), ["billing/invoice"]);
    // Characters that mean something to SQL's LIKE are plain text here.
    let (found, _) = all_pages(&server, "/v1/prompts?q=%25", "prompts");
    assert!(found.is_empty());
    let (found, _) = all_pages(&server, "/v1/prompts?q=_", "prompts");
    assert_eq!(found.len(), SUPPORT_PROMPTS);
    for path in [
        "/v1/prompts?env=mars",
        "/v1/prompts?service=nobody",
        "/v1/prompts?q=zzz",
    ] {
        let body = server.get(path, Some(READ)).json();
        assert_eq!(body["prompts"], serde_json::json!([]), "{path}");
        assert_eq!(body["next_cursor"], Value::Null, "{path}");
    }

    // Authentication comes first.
    server.get("/v1/prompts", None).error(401, "unauthorized");
    server
        .get("/v1/prompts?limit=0&cursor=!!", None)
        .error(401, "unauthorized");
}

#[test]
fn hostile_paging_input_gets_a_json_400_or_422() {
    let (db, repo) = registry();
    let server = start(&repo, &db);
    let page = server.get("/v1/prompts?limit=2", Some(READ)).json();
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();

    for limit in ["0", "101", "-1", "1000", "99999999999999999999999999"] {
        server
            .get(&format!("/v1/prompts?limit={limit}"), Some(READ))
            .error(422, "invalid");
        server
            .get(
                &format!("/v1/prompts/billing/invoice/versions?limit={limit}"),
                Some(READ),
            )
            .error(422, "invalid");
    }
    for limit in ["", "ten", "1.5", "0x10", "%20"] {
        server
            .get(&format!("/v1/prompts?limit={limit}"), Some(READ))
            .error(400, "bad_request");
    }

    let half = &cursor[..cursor.len() / 2];
    let nul = URL_SAFE_NO_PAD.encode(br#"{"p":["billing\u0000","x"]}"#);
    let huge = "A".repeat(20_000);
    let foreign = URL_SAFE_NO_PAD.encode(br#"{"v":2}"#);
    for bad in [
        "!!!",
        "%FF%FE",
        "@@@@",
        half,
        "e30",
        nul.as_str(),
        huge.as_str(),
        foreign.as_str(),
        "%00",
    ] {
        let reply = server.get(&format!("/v1/prompts?cursor={bad}"), Some(READ));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{bad}"
        );
        reply.error(400, "bad_request");
    }
    // A well-formed cursor naming a place where no prompt is still pages from there.
    let elsewhere = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&serde_json::json!({"p": ["billing", "j".repeat(6000)]})).expect("JSON"),
    );
    let reply = server.get(
        &format!("/v1/prompts?cursor={elsewhere}&limit=1"),
        Some(READ),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        names(&[reply.json()["prompts"][0].clone()]),
        ["billing/refund"]
    );
    // Filters with NUL, invalid UTF-8 (read as U+FFFD, matching nothing), a huge one.
    for query in ["q=%00", "service=a%00b", "env=x%00"] {
        server
            .get(&format!("/v1/prompts?{query}"), Some(READ))
            .error(400, "bad_request");
    }
    let odd = server.get("/v1/prompts?env=%FF&q=%FE", Some(READ));
    assert_eq!(odd.status, 200, "{}", odd.text);
    assert_eq!(odd.json()["prompts"], serde_json::json!([]));
    let long = server.get(&format!("/v1/prompts?q={}", "é".repeat(5000)), Some(READ));
    assert_eq!(long.status, 200, "{}", long.text);
    // The list's cursor is not a versions cursor.
    server
        .get(
            &format!("/v1/prompts/billing/invoice/versions?cursor={cursor}"),
            Some(READ),
        )
        .error(400, "bad_request");
    server
        .get(
            "/v1/prompts/billing/invoice/versions?cursor=%%%",
            Some(READ),
        )
        .error(400, "bad_request");
    // The server lived through all of it.
    assert_eq!(server.get("/v1/prompts?limit=1", Some(READ)).status, 200);
}

#[test]
fn versions_are_listed_with_the_environments_that_run_them() {
    let (db, repo) = registry();
    let server = start(&repo, &db);

    let (versions, pages) = all_pages(
        &server,
        "/v1/prompts/billing/invoice/versions?limit=2",
        "versions",
    );
    assert_eq!(pages, 2);
    let numbers: Vec<_> = versions.iter().map(|v| v["version"].clone()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(versions[0]["environments"], serde_json::json!(["staging"]));
    assert_eq!(versions[1]["environments"], serde_json::json!([]));
    assert_eq!(
        versions[2]["environments"],
        serde_json::json!(["production"])
    );
    assert_eq!(
        versions[0]["commit_message"].as_str().map(str::trim),
        Some("v3")
    );
    assert_eq!(
        versions[2]["commit_message"].as_str().map(str::trim),
        Some("v1")
    );
    assert_eq!(versions[0]["commit_sha"].as_str().map(str::len), Some(40));
    assert!(versions[0]["created_by"].is_string(), "{}", versions[0]);
    assert!(versions[0]["created_at"].is_i64(), "{}", versions[0]);

    // A prompt production pins and staging does not mention: both run its only version.
    let reply = server.get("/v1/prompts/support/reply_07/versions", Some(READ));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["versions"][0]["environments"],
        serde_json::json!(["production", "staging"])
    );
    assert_eq!(body["next_cursor"], Value::Null);

    server
        .get("/v1/prompts/billing/nothing/versions", Some(READ))
        .error(404, "not_found");
    server
        .get("/v1/prompts/billing/invoice/versions", None)
        .error(401, "unauthorized");
}

#[test]
fn descriptions_follow_the_tip_and_an_older_schema_lists_none() {
    let (db, repo) = registry();
    // A new description (no new version), a removed one.
    repo.write(
        "prompts/billing/refund.yaml",
        &format!("description: Refunds\n{}", prompt("refund")),
    );
    repo.write("prompts/billing/invoice.yaml", &prompt("third"));
    repo.commit("descriptions");
    sync(&repo, &db);
    let server = start(&repo, &db);
    let body = server.get("/v1/prompts?service=billing", Some(READ)).json();
    assert_eq!(body["prompts"][0]["latest_version"], 3);
    assert_eq!(body["prompts"][0]["description"], Value::Null);
    assert_eq!(body["prompts"][1]["description"], "Refunds");
    assert_eq!(body["prompts"][1]["latest_version"], 1);
    server.stop();

    // A registry an older promptctl synced (schema 3, no descriptions) still lists.
    db.rows("DROP TABLE prompt_descriptions");
    db.rows("DELETE FROM schema_migrations WHERE version >= 4 RETURNING version");
    let server = start(&repo, &db);
    let reply = server.get("/v1/prompts?service=billing", Some(READ));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["prompts"][1]["description"], Value::Null);
}

#[test]
fn the_document_describes_the_listings() {
    let (db, repo) = registry();
    let server = start(&repo, &db);
    let document = server.get("/openapi.json", None).json();
    let list = &document["paths"]["/v1/prompts"]["get"];
    assert_eq!(list["operationId"], "list_prompts");
    let versions = &document["paths"]["/v1/prompts/{service}/{name}/versions"]["get"];
    assert_eq!(versions["operationId"], "list_prompt_versions");
    // No module path as a tag: generated clients file operations under their tags.
    for operation in [list, versions] {
        assert!(
            operation["tags"]
                .as_array()
                .is_none_or(|tags| tags.iter().all(|t| !t.to_string().contains("::"))),
            "{operation}"
        );
    }
    let params = |operation: &Value| -> Vec<(String, String)> {
        operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    p["in"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    for name in ["limit", "cursor", "service", "env", "q"] {
        assert!(
            params(list).contains(&(name.to_owned(), "query".to_owned())),
            "{name}"
        );
    }
    for (name, place) in [
        ("service", "path"),
        ("name", "path"),
        ("limit", "query"),
        ("cursor", "query"),
    ] {
        assert!(
            params(versions).contains(&(name.to_owned(), place.to_owned())),
            "{name}"
        );
    }
    let limit = list["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
        .expect("limit");
    assert_eq!(limit["schema"]["maximum"], 100);
    assert_eq!(limit["schema"]["minimum"], 1);
    let schemas = &document["components"]["schemas"];
    for field in ["model", "description", "updated_at", "environments"] {
        assert!(
            schemas["PromptListItem"]["properties"][field].is_object(),
            "{field}"
        );
    }
    assert!(
        schemas["PromptList"]["required"]
            .as_array()
            .is_some_and(|r| r.contains(&Value::from("next_cursor")))
    );
}

#[test]
fn a_sync_between_two_pages_neither_repeats_nor_skips() {
    let (db, repo) = registry();
    let server = start(&repo, &db);
    let first = server.get("/v1/prompts?limit=2", Some(READ)).json();
    assert_eq!(
        names(first["prompts"].as_array().expect("prompts")),
        ["billing/invoice", "billing/refund"]
    );
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    // A prompt sorting before the cursor and one after it arrive between the two pages.
    repo.write("prompts/billing/abacus.yaml", &prompt("new"));
    repo.write("prompts/support/reply_05a.yaml", &prompt("new"));
    repo.commit("two more");
    sync(&repo, &db);
    let second = server.get(&format!("/v1/prompts?limit=3&cursor={cursor}"), Some(READ));
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(
        names(second.json()["prompts"].as_array().expect("prompts")),
        ["support/reply_00", "support/reply_01", "support/reply_02"]
    );
    let rest = server
        .get(
            &format!("/v1/prompts?limit=100&cursor={cursor}"),
            Some(READ),
        )
        .json();
    assert_eq!(rest["next_cursor"], Value::Null);
    let rest = rest["prompts"].as_array().expect("prompts").clone();
    assert_eq!(rest.len(), SUPPORT_PROMPTS + 1);
    assert!(names(&rest).contains(&"support/reply_05a".to_owned()));
}

/// The `href` of the link with `id` in a dashboard page, its `&amp;` decoded.
fn link(html: &str, id: &str) -> Option<String> {
    let anchor = format!("id=\"{id}\" href=\"");
    let start = html.find(&anchor)? + anchor.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

#[test]
fn the_dashboard_pages_through_the_registry_listing() {
    let (db, repo) = registry();
    let server = start(&repo, &db);
    // 55 prompts: the default page of 50, then the rest through the "Next page" link (the
    // front page sorts every prompt, so it pages by number, not with a listing's cursor).
    let mut shown = Vec::new();
    let mut path = "/".to_owned();
    for _ in 0..3 {
        let page = server.get(&path, Some(READ));
        assert_eq!(page.status, 200, "{}", page.text);
        shown.extend(
            page.text
                .match_indices("<tr class=\"prompt\" ")
                .map(|(at, _)| at),
        );
        match link(&page.text, "next-page") {
            Some(next) => path = format!("/{next}"),
            None => break,
        }
    }
    assert_eq!(shown.len(), SUPPORT_PROMPTS + 2);
    let first = server.get("/?limit=2", Some(READ)).text;
    assert!(first.contains("/prompts/billing/invoice"), "{first}");
    assert!(first.contains("/prompts/billing/refund"), "{first}");
    assert!(!first.contains("/prompts/support/"), "{first}");
    let next = link(&first, "next-page").expect("a next page");
    assert_eq!(next, "?range=24h&sort=calls&limit=2&page=2");
    let second = server.get(&format!("/{next}"), Some(READ)).text;
    assert!(second.contains("/prompts/support/reply_00"), "{second}");
    assert!(second.contains("/prompts/support/reply_01"), "{second}");

    // A prompt's versions, one page at a time, newest first.
    let version = |n: u32| format!("<tr class=\"version\"><td>v{n}</td>");
    let page = server
        .get("/prompts/billing/invoice?limit=2", Some(READ))
        .text;
    assert!(
        page.contains(&version(3)) && page.contains(&version(2)),
        "{page}"
    );
    assert!(!page.contains(&version(1)), "{page}");
    let older = link(&page, "older-versions").expect("older versions");
    let page = server
        .get(&format!("/prompts/billing/invoice{older}"), Some(READ))
        .text;
    assert!(
        page.contains(&version(1)) && !page.contains(&version(2)),
        "{page}"
    );
    assert!(link(&page, "older-versions").is_none(), "{page}");
    // Hostile paging input is refused as by the API; an unknown prompt is a 404.
    let reply = server.get("/?limit=0", Some(READ));
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = server.get("/?page=nonsense", Some(READ));
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = server.get("/prompts/billing/nowhere", Some(READ));
    assert_eq!(reply.status, 404, "{}", reply.text);
}
