// Enhancements only: every page works without this file.
"use strict";

// Copy buttons: put the digest or command on the clipboard.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const text = button.dataset.copy;
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});

// Forms that destroy something ask first.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Filtering as you type: fetch the page the search form would load, swap its results.
for (const input of document.querySelectorAll("input[data-live]")) {
  let timer = null;
  let controller = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const form = input.form;
      const url = new URL(form.action, location.href);
      for (const [key, value] of new FormData(form)) url.searchParams.set(key, value);
      if (controller) controller.abort();
      controller = new AbortController();
      try {
        const response = await fetch(url, { signal: controller.signal, credentials: "same-origin" });
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const main = document.querySelector("main");
        const fresh = page.querySelector("main");
        if (!main || !fresh) return;
        // Keep the search box (and its focus); replace what follows it.
        const keep = form;
        while (keep.nextSibling) keep.nextSibling.remove();
        let node = page.querySelector("form.search");
        node = node ? node.nextSibling : null;
        while (node) {
          const next = node.nextSibling;
          main.appendChild(document.importNode(node, true));
          node = next;
        }
        history.replaceState(null, "", url);
      } catch (error) {
        if (error.name !== "AbortError") form.submit();
      }
    }, 200);
  });
}

// Live progress of a garbage collection on the storage page.
const gc = document.getElementById("gc");
if (gc && gc.dataset.state === "running") {
  const poll = async () => {
    const response = await fetch(gc.dataset.statusUrl, { credentials: "same-origin" });
    const status = await response.json();
    if (status.state !== "running") {
      location.reload();
      return;
    }
    const progress = status.progress || {};
    const bar = gc.querySelector("progress");
    const phase = gc.querySelector("[data-phase]");
    if (bar) { bar.max = progress.total || 1; bar.value = progress.done || 0; }
    if (phase) phase.textContent = `${progress.phase || "starting"}: ${progress.done || 0} of ${progress.total || "?"}`;
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
}
