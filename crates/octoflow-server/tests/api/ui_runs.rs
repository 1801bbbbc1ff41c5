//! The web UI's runs: the list filtered by trigger and creation time and paged.

use std::time::Duration;

use serde_json::json;

use crate::runs::start;
use crate::support::{App, get, post};

const ECHO: &str = "name: echo\ntriggers:\n  - webhook: { path: echo }\nsteps:\n  - name: say\n    set_fact: { value: 1 }\n";

/// The ids of the runs a runs page links, in its order.
fn listed(page: &str) -> Vec<String> {
    page.split("<a href=\"/ui/runs/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|id| id.len() == 36)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn runs_are_filtered_by_trigger_and_creation_time() {
    let app = App::builder().flow("echo.yml", ECHO).workers().build();
    let manual = start(&app, "echo", &json!({})).await;
    app.finished(&manual).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let hooked = app.send(post("/hooks/echo")).await.expect(202).json();
    let hooked = hooked["run_id"].as_str().unwrap().to_owned();
    app.finished(&hooked).await;

    let webhooks = app.send(get("/ui/runs?trigger=webhook")).await.expect(200);
    assert_eq!(
        listed(&webhooks.text),
        [hooked.as_str()],
        "{}",
        webhooks.text
    );
    assert!(
        webhooks.text.contains("value=\"webhook\""),
        "the filter is kept"
    );
    let manuals = app.send(get("/ui/runs?trigger=manual")).await.expect(200);
    assert_eq!(listed(&manuals.text), [manual.as_str()]);
    let none = app.send(get("/ui/runs?trigger=schedule")).await.expect(200);
    assert!(none.text.contains("No runs match."), "{}", none.text);

    let since = app
        .send(get(&format!("/ui/runs?since={}", urlencode(&between))))
        .await
        .expect(200);
    assert_eq!(listed(&since.text), [hooked.as_str()], "{}", since.text);
    let until = app
        .send(get(&format!("/ui/runs?until={}", urlencode(&between))))
        .await
        .expect(200);
    assert_eq!(listed(&until.text), [manual.as_str()], "{}", until.text);
    let both = app
        .send(get(&format!(
            "/ui/runs?since={}&until={}",
            urlencode(&between),
            urlencode(&between)
        )))
        .await
        .expect(200);
    assert!(both.text.contains("No runs match."), "{}", both.text);

    let bad = app.send(get("/ui/runs?since=yesterday")).await.expect(400);
    assert!(
        bad.text.contains("invalid RFC 3339 time `yesterday`"),
        "{}",
        bad.text
    );
    assert!(
        bad.text.contains("value=\"yesterday\""),
        "what was typed is kept"
    );
}

/// `text` percent-encoded for a query (`+` and `:` of a time).
fn urlencode(text: &str) -> String {
    let pair = serde_urlencoded::to_string([("", text)]).unwrap();
    pair.strip_prefix('=').unwrap().to_owned()
}

#[tokio::test]
async fn runs_are_paged_with_the_filters_kept() {
    let app = App::builder().flow("echo.yml", ECHO).workers().build();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = start(&app, "echo", &json!({})).await;
        app.finished(&id).await;
        ids.push(id);
    }
    ids.reverse(); // newest first, as listed

    let first = app
        .send(get("/ui/runs?flow=echo&per_page=2"))
        .await
        .expect(200);
    assert_eq!(listed(&first.text), ids[..2]);
    assert!(
        first.text.contains("page 1 of 2 · 3 runs"),
        "{}",
        first.text
    );
    assert!(!first.text.contains("rel=\"prev\""));
    let older = link(&first.text, "next");
    assert!(
        older.contains("flow=echo") && older.contains("per_page=2") && older.contains("page=2"),
        "{older}"
    );

    let second = app.send(get(&older)).await.expect(200);
    assert_eq!(listed(&second.text), ids[2..]);
    assert!(
        second.text.contains("page 2 of 2 · 3 runs"),
        "{}",
        second.text
    );
    assert!(!second.text.contains("rel=\"next\""));
    let newer = link(&second.text, "prev");
    assert_eq!(
        listed(&app.send(get(&newer)).await.expect(200).text),
        ids[..2]
    );

    let beyond = app
        .send(get("/ui/runs?per_page=2&page=3"))
        .await
        .expect(200);
    assert!(beyond.text.contains("No runs match."), "{}", beyond.text);
    let bad = app.send(get("/ui/runs?page=0")).await.expect(400);
    assert!(
        bad.text.contains("expected a number from 1, found `0`"),
        "{}",
        bad.text
    );
}

/// The address of the page link `rel` (`prev`, `next`), as a browser reads it.
fn link(page: &str, rel: &str) -> String {
    let tag = page
        .split("<a ")
        .find(|tag| tag.contains(&format!("rel=\"{rel}\"")))
        .unwrap_or_else(|| panic!("no {rel} link: {page}"));
    let href = tag
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    href.replace("&amp;", "&").replace("&#x2f;", "/")
}
