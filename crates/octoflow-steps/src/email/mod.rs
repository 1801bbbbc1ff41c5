//! The `email` kind: one message through a mail server of `smtp:` in config.yml — to, cc,
//! subject, a body written inline or rendered from a template, run files attached. Result
//! `{message_id}`.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use octoflow_core::expr::render_str;
use octoflow_core::step::prelude::*;

use crate::config::SmtpServer;

/// The server a step uses when it names none.
const DEFAULT_SERVER: &str = "default";

/// The `email` kind, with the node's mail servers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Email {
    servers: BTreeMap<String, SmtpServer>,
}

impl Email {
    pub(crate) fn new(servers: BTreeMap<String, SmtpServer>) -> Self {
        Self { servers }
    }
}

/// The settings of an `email` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailSettings {
    /// The recipients: a list of addresses (`Name <a@b.org>` or `a@b.org`), templates.
    to: Tpl<Vec<String>>,
    /// Copies, as `to`.
    #[serde(default)]
    cc: Option<Tpl<Vec<String>>>,
    /// The subject (template).
    subject: Tpl<String>,
    /// The text of the message (template); or give `template`.
    #[serde(default)]
    body: Option<Tpl<String>>,
    /// A file in the templates directory rendered as the text, with the run's context.
    #[serde(default)]
    template: Option<String>,
    /// Files to attach: paths relative to the data directory (a run's files are under
    /// `runs/<run id>/`), confined like every path (templates).
    #[serde(default)]
    attach: Option<Tpl<Vec<String>>>,
    /// The mail server, a name under `smtp:` in config.yml; default `default`.
    #[serde(default)]
    smtp: Option<String>,
}

impl StepKind for Email {
    const NAME: &'static str = "email";
    type Settings = EmailSettings;

    fn check(&self, settings: &EmailSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (&settings.body, &settings.template) {
            (None, None) => problems.push(Problem::at("body", "give `body` or `template`")),
            (Some(_), Some(_)) => problems.push(Problem::at(
                "template",
                "`body` and `template` are both set; keep one",
            )),
            _ => {}
        }
        let server = settings.smtp.as_deref().unwrap_or(DEFAULT_SERVER);
        if !self.servers.contains_key(server) {
            let known: Vec<&str> = self.servers.keys().map(String::as_str).collect();
            let hint = if known.is_empty() {
                "; `smtp:` in config.yml names none".to_owned()
            } else {
                format!("; known: {}", known.join(", "))
            };
            problems.push(Problem::at(
                "smtp",
                format!("unknown mail server `{server}`{hint}"),
            ));
        }
        if let (Some(template), Some(dir)) = (&settings.template, cx.templates_dir)
            && !dir.join(template).is_file()
        {
            problems.push(Problem::at(
                "template",
                format!("template `{template}` is not in the templates directory"),
            ));
        }
        problems
    }

    async fn run(&self, settings: &EmailSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let name = settings.smtp.as_deref().unwrap_or(DEFAULT_SERVER);
        let server = self
            .servers
            .get(name)
            .ok_or_else(|| StepError::fatal(format!("unknown mail server `{name}`")))?;
        let message = self.message(settings, server, cx).await?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or_default()
            .to_owned();
        let url = cx.secrets().render(&server.url).map_err(|e| {
            StepError::fatal(format!("mail server `{name}`: cannot render its URL: {e}"))
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| StepError::fatal(format!("mail server `{name}`: invalid URL: {e}")))?
            .build();
        let sent = tokio::select! {
            sent = transport.send(message) => sent,
            () = cx.cancel_token().cancelled() => return Err(StepError::Cancelled),
        };
        sent.map_err(|e| StepError::failed(format!("mail server `{name}`: {e}")))?;
        cx.log()
            .note(format!("Sent {message_id} through `{name}`."))
            .await;
        Ok(json!({ "message_id": message_id }))
    }
}

impl Email {
    /// The message: addresses, subject, text, attachments.
    async fn message(
        &self,
        settings: &EmailSettings,
        server: &SmtpServer,
        cx: &StepCx<'_>,
    ) -> Result<Message, StepError> {
        let from = server
            .from
            .clone()
            .unwrap_or_else(|| "octoflow@localhost".to_owned());
        let mut builder = Message::builder()
            .from(mailbox("smtp.from", &from)?)
            .subject(cx.render("subject", &settings.subject)?)
            .message_id(None);
        for to in cx.render("to", &settings.to)? {
            builder = builder.to(mailbox("to", &to)?);
        }
        if let Some(cc) = &settings.cc {
            for cc in cx.render("cc", cc)? {
                builder = builder.cc(mailbox("cc", &cc)?);
            }
        }
        let text = match (&settings.body, &settings.template) {
            (Some(body), _) => cx.render("body", body)?,
            (None, Some(template)) => {
                let path = cx.templates_dir().join(template);
                let source = tokio::fs::read_to_string(&path).await.map_err(|e| {
                    StepError::fatal(format!("cannot read template `{template}`: {e}"))
                })?;
                render_str(&source, cx.scope()).map_err(|e| StepError::Render {
                    setting: "template".to_owned(),
                    source: Box::new(e),
                })?
            }
            (None, None) => return Err(StepError::fatal("give `body` or `template`")),
        };
        let attach = match &settings.attach {
            Some(tpl) => cx.render("attach", tpl)?,
            None => Vec::new(),
        };
        if attach.is_empty() {
            return builder
                .body(text)
                .map_err(|e| StepError::fatal(format!("cannot build the message: {e}")));
        }
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(text));
        for file in attach {
            let path = cx
                .files()
                .resolve(&file)
                .map_err(|e| StepError::fatal(format!("`attach`: {e}")))?;
            let bytes = tokio::fs::read(path.as_path())
                .await
                .map_err(|e| StepError::fatal(format!("cannot attach `{file}`: {e}")))?;
            let filename = Path::new(&file)
                .file_name()
                .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
            let octets = ContentType::parse("application/octet-stream")
                .map_err(|e| StepError::fatal(e.to_string()))?;
            parts = parts.singlepart(Attachment::new(filename).body(bytes, octets));
        }
        builder
            .multipart(parts)
            .map_err(|e| StepError::fatal(format!("cannot build the message: {e}")))
    }
}

/// An address as lettre reads it; an error names the setting.
fn mailbox(setting: &str, text: &str) -> Result<Mailbox, StepError> {
    text.parse::<Mailbox>()
        .map_err(|e| StepError::fatal(format!("`{setting}`: `{text}` is not an address: {e}")))
}
