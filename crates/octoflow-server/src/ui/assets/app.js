// octoflow web UI: the few live parts. Pages work without it; with it, times show in the
// browser's zone (UTC on hover) and a run's log arrives line by line as the run writes it.
"use strict";

for (const time of document.querySelectorAll("time[datetime]")) {
  const utc = time.getAttribute("datetime");
  const when = new Date(utc);
  if (!Number.isNaN(when.getTime())) {
    time.title = utc + " (UTC)";
    time.textContent = when.toLocaleString();
  }
}

const log = document.getElementById("log");
if (log) {
  const source = new EventSource(log.dataset.src);
  const status = document.getElementById("log-status");
  source.addEventListener("log", (event) => {
    const entry = JSON.parse(event.data);
    const line = document.createElement("div");
    line.className = entry.stream;
    line.textContent = entry.step + " | " + entry.line;
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(line);
    if (atEnd) {
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", (event) => {
    source.close();
    const end = JSON.parse(event.data);
    if (status) {
      status.textContent = "The run ended: " + end.status + ".";
    }
    if (log.dataset.live === "true") {
      // The steps' records changed while the page was open: show them as they ended.
      window.setTimeout(() => window.location.reload(), 800);
    }
  });
  source.onerror = () => {
    if (status) {
      status.textContent = "The log stream was cut; reload the page to follow it again.";
    }
    source.close();
  };
}
