//! The `OpenAPI` document lists exactly the routes the router serves.

use std::collections::BTreeSet;

use octoflow_server::{Access, routes};

use crate::support::{App, get};

#[tokio::test]
async fn the_document_lists_every_route_and_no_other() {
    let app = App::standard().build();
    let doc = app
        .send(get("/api/v1/openapi.json"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        doc["openapi"].as_str().unwrap().split('.').next(),
        Some("3")
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if let Some(operation) = item.get(method) {
                let secured = operation.get("security").is_some();
                documented.insert((method.to_uppercase(), path.clone(), secured));
            }
        }
    }
    let served: BTreeSet<(String, String, bool)> = routes()
        .iter()
        .map(|r| {
            let path = r.path.replace("{*", "{");
            (r.method.to_string(), path, r.access != Access::Open)
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented (or security differs): {undocumented:?}\n\
         documented but not served (or security differs): {unserved:?}"
    );
}

#[test]
fn the_api_doc_lists_every_route() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let doc = std::fs::read_to_string(path).unwrap();
    for route in routes() {
        let row = format!(
            "| `{}` | `{}` |",
            route.method,
            route.path.replace("{*", "{")
        );
        assert!(
            doc.contains(&row),
            "docs/api.md lacks the route row `{row}`"
        );
    }
}
