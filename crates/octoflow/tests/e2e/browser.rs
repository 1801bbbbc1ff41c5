//! The web UI in headless Chromium against a real `octoflow serve`: this test prepares the
//! node — flows, an admin and a viewer — and runs `browser/ui.mjs` (playwright-core driving
//! Debian's Chromium, axe-core scanning each page), which does what the UI's users do and
//! fails on the first thing that does not work.
//!
//! It needs Node.js, Chromium (`OCTOFLOW_TEST_CHROMIUM`, default `/usr/bin/chromium`) and a
//! directory whose `node_modules` holds playwright-core and axe-core
//! (`OCTOFLOW_TEST_BROWSER_MODULES`; `.ci/run` installs them). Without them it is skipped,
//! or fails under CI. Screenshots go to `OCTOFLOW_UI_SHOTS` when set (the ones in `docs/ui/`
//! are made so), else into the test's own directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use octoflow_testkit::cli::{Octo, Output};
use octoflow_testkit::services;

use crate::octo;
use crate::server::Server;

/// What the script needs: Node.js, the browser and the modules' directory; or why not.
struct Needs {
    chromium: PathBuf,
    modules: PathBuf,
}

impl Needs {
    fn find() -> Result<Self, String> {
        let chromium = PathBuf::from(services::url("OCTOFLOW_TEST_CHROMIUM", "/usr/bin/chromium"));
        let modules = services::url("OCTOFLOW_TEST_BROWSER_MODULES", "");
        if modules.is_empty() {
            return Err("OCTOFLOW_TEST_BROWSER_MODULES is not set".to_owned());
        }
        let modules = PathBuf::from(modules);
        for package in ["playwright-core", "axe-core"] {
            if !modules.join("node_modules").join(package).is_dir() {
                return Err(format!("no {package} in {}", modules.display()));
            }
        }
        if !chromium.is_file() {
            return Err(format!("no browser at {}", chromium.display()));
        }
        #[allow(clippy::disallowed_methods)] // the test asks Node.js for its version
        let node = Command::new("node").arg("--version").output();
        match node {
            Ok(out) if out.status.success() => Ok(Self { chromium, modules }),
            _ => Err("node is not on PATH".to_owned()),
        }
    }
}

const DEPLOY: &str = r#"name: deploy
description: Deploys a build to an environment
params:
  env: { type: string, enum: [dev, prod], required: true }
  count: { type: integer, default: 1, description: how many copies }
steps:
  - name: deploy
    exec: { command: [sh, -c, "echo deploying {{ params.count }} to {{ params.env }}"] }
  - name: report
    set_fact: { value: { env: "{{ params.env }}", copies: "{{ params.count }}" } }
"#;

const NIGHTLY: &str = r#"name: nightly
description: The nightly export
schedule: { cron: "0 2 * * *" }
steps:
  - name: export
    set_fact: { value: 1 }
"#;

/// A flow whose step writes its pid, then a line a second, then naps: for the live log and
/// the cancel.
fn slow(data: &Path) -> String {
    format!(
        "name: slow\nsteps:\n  - name: ticks\n    exec:\n      command: [sh, -c, \"echo $$ > {}; \
         for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 1; done; sleep 60\"]\n",
        data.join("slow.pid").display()
    )
}

/// A flow whose first step counts its runs in a file and whose second fails until a marker
/// file exists: for the retry from the failed step.
fn flaky(data: &Path) -> String {
    format!(
        "name: flaky\nsteps:\n  - name: count\n    exec: {{ command: [sh, -c, \"echo x >> {}\"] }}\n  \
         - name: check\n    exec: {{ command: [test, -f, \"{}\"] }}\n",
        data.join("flaky.count").display(),
        data.join("flaky.ok").display()
    )
}

/// A flow that reports its progress to its own callback URL, waits for a gate file, reports
/// again, then holds: for the progress shown live, and a running run on every page.
fn progress(data: &Path) -> String {
    let report = |current: u32, message: &str| {
        format!(
            "    rest:\n      uri: \"{{{{ run.callback_url }}}}\"\n      method: POST\n      \
             body: {{ progress: {{ current: {current}, total: 3, message: {message} }} }}\n"
        )
    };
    format!(
        "name: progress\ndescription: Reports its progress\nsteps:\n  - name: copy\n{}  \
         - name: gate\n    exec: {{ command: [sh, -c, \"while [ ! -f {} ]; do sleep 0.2; done\"] }}\n  \
         - name: check\n{}  - name: hold\n    exec: {{ command: [sh, -c, \"echo holding; sleep 600\"] }}\n",
        report(1, "copying"),
        data.join("progress.gate").display(),
        report(2, "checking"),
    )
}

fn add_user(o: &Octo, name: &str, role: &str) {
    o.clone()
        .args(["user", "add", name, "--role", role, "--password-stdin"])
        .stdin(&format!("{name}-password\n"))
        .run()
        .success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_works_in_headless_chromium() {
    let needs = match Needs::find() {
        Ok(needs) => needs,
        Err(why) => {
            return services::unreachable(
                "headless Chromium",
                "OCTOFLOW_TEST_BROWSER_MODULES",
                &why,
            )
            .unwrap_or(());
        }
    };
    let o = octo();
    let data = o.data_dir();
    let o = o
        .flow("deploy", DEPLOY)
        .flow("nightly", NIGHTLY)
        .flow("slow", &slow(&data))
        .flow("flaky", &flaky(&data))
        .flow("progress", &progress(&data));
    add_user(&o, "ada", "admin");
    add_user(&o, "vic", "viewer");
    let server = Server::start(&o, &["--workers", "4"]);
    let shots = match services::url("OCTOFLOW_UI_SHOTS", "") {
        dir if dir.is_empty() => o.path("shots"),
        dir => PathBuf::from(dir),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/browser/ui.mjs");
    #[allow(clippy::disallowed_methods)] // the test runs the browser script
    let node = Command::new("node")
        .arg(&script)
        .env("OCTOFLOW_URL", &server.url)
        .env("OCTOFLOW_DATA", &data)
        .env("OCTOFLOW_UI_SHOTS", &shots)
        .env("OCTOFLOW_TEST_BROWSER_MODULES", &needs.modules)
        .env("OCTOFLOW_TEST_CHROMIUM", &needs.chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || Output::wait(node, Duration::from_secs(480)))
        .await
        .unwrap();
    assert_eq!(
        out.exit_code(),
        Some(0),
        "the browser script failed:\n{}\n{}",
        out.stdout(),
        out.stderr()
    );
    assert!(out.stdout().contains("the web UI works in Chromium"));
    #[allow(clippy::print_stdout)] // what the browser did, in the test's output
    {
        println!("{}", out.stdout());
    }
}
