// The playground: create a video with your key, watch it render live, play it, manage history.
"use strict";

(() => {
  const key = vg.stored("vidgate.apiKey");
  const $ = (id) => document.getElementById(id);
  let models = [];
  let watching = null;  // AbortController of the stream being followed

  function fillModels() {
    const select = $("model");
    select.replaceChildren(...models.map((m) => vg.el("option", { value: m.id }, m.id)));
    fillChoices();
  }

  function fillChoices() {
    const model = models.find((m) => m.id === $("model").value);
    if (!model) return;
    const sizes = model.sizes || [];
    const preferred = sizes.includes("1280x720") ? "1280x720" : sizes[0];
    $("size").replaceChildren(...sizes.map((s) =>
      vg.el("option", { value: s, selected: s === preferred }, s.replace("x", " × "))));
    const seconds = model.seconds || [];
    $("seconds").replaceChildren(...seconds.map((s) =>
      vg.el("option", { value: s, selected: s === model.default_seconds }, `${s} s`)));
  }

  async function useKey() {
    const status = $("key-status");
    if (!key.get()) {
      vg.say(status, "Paste an API key to start.");
      $("create").disabled = true;
      $("history").replaceChildren();
      return;
    }
    try {
      models = (await vg.call(key.get(), "GET", "/v1/models")).data;
      fillModels();
      vg.say(status, `Key ready: ${models.length} model(s) available.`);
      $("create").disabled = models.length === 0;
      await loadHistory();
    } catch (err) {
      vg.say(status, `This key does not work: ${err.message}`, true);
      $("create").disabled = true;
    }
  }

  function showProgress(video) {
    $("progress").value = video.progress || 0;
    const label = { queued: "Queued", in_progress: "Rendering", completed: "Completed",
                    failed: "Failed" }[video.status] || video.status;
    let text = `${label}: ${video.progress || 0}%`;
    if (video.error) text += ` (${video.error.code}: ${video.error.message})`;
    vg.say($("progress-text"), text, video.status === "failed");
  }

  function play(video) {
    $("result").src = video.url;
    $("result-download").href = video.url;
    $("result-download").setAttribute("download", `${video.id}.mp4`);
    $("result-box").hidden = false;
  }

  async function create(event) {
    event.preventDefault();
    if (watching) watching.abort();
    const form = new FormData();
    form.append("model", $("model").value);
    form.append("prompt", $("prompt").value);
    form.append("size", $("size").value);
    form.append("seconds", $("seconds").value);
    const image = $("image").files[0];
    if (image) form.append("input_reference", image, image.name);
    $("create").disabled = true;
    $("result-box").hidden = true;
    try {
      const video = await vg.call(key.get(), "POST", "/v1/videos", form);
      showProgress(video);
      loadHistory();
      watching = new AbortController();
      const final = await vg.follow(key.get(), `/v1/videos/${encodeURIComponent(video.id)}/events`,
                                    (_name, data) => showProgress(data), watching.signal);
      if (final && final.status === "completed") play(final);
      await loadHistory();
    } catch (err) {
      if (err.name !== "AbortError") vg.say($("progress-text"), err.message, true);
    } finally {
      $("create").disabled = false;
    }
  }

  async function loadHistory(note) {
    const list = $("history");
    try {
      const page = await vg.call(key.get(), "GET", "/v1/videos?limit=50");
      list.replaceChildren(...page.data.map(historyItem));
      vg.say($("history-status"), [note, page.data.length ? "" : "No videos yet."]
        .filter(Boolean).join(" "));
    } catch (err) {
      vg.say($("history-status"), `Could not load your videos: ${err.message}`, true);
    }
  }

  function historyItem(video) {
    const done = video.status === "completed" && video.url;
    const thumb = video.thumbnail_url
      ? vg.el("img", { src: video.thumbnail_url, alt: "", loading: "lazy", width: 96 })
      : vg.el("div", { class: "thumb-empty", "aria-hidden": "true" });
    const title = video.prompt.length > 80 ? `${video.prompt.slice(0, 80)}…` : video.prompt;
    const status = video.status === "failed" && video.error
      ? `failed: ${video.error.code}` : video.status === "completed"
        ? "completed" : `${video.status} ${video.progress}%`;
    return vg.el("li", { class: "item", "data-id": video.id },
      thumb,
      vg.el("div", { class: "meta" },
        vg.el("p", { class: "prompt" }, title),
        vg.el("p", { class: "hint" },
              `${video.model} · ${video.size} · ${video.seconds} s · ${status} · `
              + vg.when(video.created_at))),
      vg.el("div", { class: "actions" },
        done ? vg.el("button", { type: "button", class: "secondary",
                                 "aria-label": `Play video: ${title}`,
                                 onclick: () => { play(video); $("result").focus(); } }, "Play")
             : null,
        done ? vg.el("a", { href: video.url, download: `${video.id}.mp4`, class: "button secondary",
                            "aria-label": `Download video: ${title}` }, "Download") : null,
        vg.el("button", { type: "button", class: "danger", "aria-label": `Delete video: ${title}`,
                          onclick: () => remove(video) }, "Delete")));
  }

  async function remove(video) {
    try {
      await vg.call(key.get(), "DELETE", `/v1/videos/${encodeURIComponent(video.id)}`);
      if ($("result").src === video.url) {
        $("result").removeAttribute("src");
        $("result-box").hidden = true;
      }
      await loadHistory("Video deleted.");
    } catch (err) {
      vg.say($("history-status"), `Could not delete: ${err.message}`, true);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("api-key").value = key.get();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      key.set($("api-key").value.trim());
      useKey();
    });
    $("forget-key").addEventListener("click", () => {
      key.set("");
      $("api-key").value = "";
      useKey();
    });
    $("model").addEventListener("change", fillChoices);
    $("create-form").addEventListener("submit", create);
    $("refresh").addEventListener("click", () => loadHistory());
    useKey();
  });
})();
