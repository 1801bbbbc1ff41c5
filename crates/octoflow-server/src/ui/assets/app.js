// octoflow web UI: the few live parts. Pages work without it; with it, times show in the
// browser's zone (UTC on hover), a run's log arrives line by line as the run writes it — the
// whole run's, and each step's once its part is opened — and its progress as it is reported.
"use strict";

for (const time of document.querySelectorAll("time[datetime]")) {
  const utc = time.getAttribute("datetime");
  const when = new Date(utc);
  if (!Number.isNaN(when.getTime())) {
    time.title = utc + " (UTC)";
    time.textContent = when.toLocaleString();
  }
}

/// Streams the log at `pre.dataset.src` into `pre`; each line through `text`. Returns the
/// event source, closed when the run ends or the stream is cut (`onEnd(status or null)`).
function follow(pre, text, onEnd) {
  const source = new EventSource(pre.dataset.src);
  source.addEventListener("log", (event) => {
    const entry = JSON.parse(event.data);
    const line = document.createElement("div");
    line.className = entry.stream;
    line.textContent = text(entry);
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(line);
    if (atEnd) {
      pre.scrollTop = pre.scrollHeight;
    }
  });
  source.addEventListener("end", (event) => {
    source.close();
    onEnd(JSON.parse(event.data).status);
  });
  source.onerror = () => {
    source.close();
    onEnd(null);
  };
  return source;
}

/// A run's progress for people: `2 of 5 — copying`, as the server writes it.
function progressText(progress) {
  let text = progress.current == null ? "" : String(progress.current);
  if (progress.total != null) {
    text += (text ? " " : "") + "of " + progress.total;
  }
  if (progress.message) {
    text += (text ? " — " : "") + progress.message;
  }
  return text;
}

const log = document.getElementById("log");
if (log) {
  const status = document.getElementById("log-status");
  const source = follow(
    log,
    (entry) => entry.step + " | " + entry.line,
    (ended) => {
      if (status) {
        status.textContent = ended
          ? "The run ended: " + ended + "."
          : "The log stream was cut; reload the page to follow it again.";
      }
      if (ended && log.dataset.live === "true") {
        // The steps' records changed while the page was open: show them as they ended.
        window.setTimeout(() => window.location.reload(), 800);
      }
    },
  );
  const progress = document.getElementById("progress");
  source.addEventListener("progress", (event) => {
    if (progress) {
      progress.textContent = progressText(JSON.parse(event.data));
      progress.hidden = false;
      document.getElementById("progress-label").hidden = false;
    }
  });
}

// Each step's log streams while its part is open.
for (const part of document.querySelectorAll("details.step-log")) {
  const pre = part.querySelector("pre.log");
  let source = null;
  part.addEventListener("toggle", () => {
    if (part.open && !source) {
      pre.replaceChildren();
      source = follow(
        pre,
        (entry) => (entry.attempt > 1 ? "#" + entry.attempt + " " : "") + entry.line,
        () => {},
      );
    } else if (!part.open && source) {
      source.close();
      source = null;
    }
  });
}
