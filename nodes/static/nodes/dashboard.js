// The cluster dashboard: draws the snapshot the page came with, then polls
// the JSON endpoint (same session login) and redraws without a reload.
// Text goes in with textContent only: commands are arbitrary client text.
(function () {
  "use strict";
  const root = document.querySelector(".raft-dashboard");
  const dataUrl = root.dataset.dataUrl;
  const pollMs = Number(root.dataset.pollMs) || 1500;
  const form = document.getElementById("command-form");
  const outcome = document.getElementById("command-outcome");
  const refresh = document.getElementById("refresh-status");
  let timer = null;
  let stopped = false;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function dash(value) {
    return value === null || value === undefined ? "\u2013" : value;
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function serverRow(server, snapshot) {
    const tr = el("tr");
    tr.dataset.server = server.id;
    const isLeader = server.id === snapshot.leader;
    if (isLeader) tr.classList.add("leader");
    if (!server.reachable) tr.classList.add("unreachable");
    const name = el("td");
    name.append(el("span", server.id, "address"));
    if (server.self) name.append(el("span", "this node", "tag"));
    if (!server.member) name.append(el("span", "catching up", "tag"));
    tr.append(name);
    let role = dash(server.role);
    if (isLeader) role = "\u2605 leader";
    tr.append(el("td", role, "role"));
    tr.append(el("td", server.voter ? "voter" : "learner"));
    tr.append(el("td", dash(server.term)));
    tr.append(el("td", dash(server.last_log_index)));
    tr.append(el("td", dash(server.commit_index)));
    tr.append(snapshotCell(server));
    tr.append(el("td", dash(server.match_index), "match-index"));
    const contact = server.last_contact_s;
    tr.append(el("td", contact === null || contact === undefined
      ? "\u2013" : (server.self ? "\u2013" : contact.toFixed(1) + " s ago")));
    tr.append(server.reachable
      ? el("td", "yes", "reachable")
      : el("td", "no: " + server.error, "unreachable"));
    return tr;
  }

  function bytes(count) {
    if (count < 1024) return count + " B";
    if (count < 1024 * 1024) return (count / 1024).toFixed(1) + " KiB";
    return (count / (1024 * 1024)).toFixed(1) + " MiB";
  }

  // The server's latest snapshot index and, while the leader sends it one
  // (Raft section 7), that transfer's progress.
  function snapshotCell(server) {
    const td = el("td", null, "snapshot");
    const index = server.snapshot_index;
    td.append(el("span", index ? index : "\u2013", "snapshot-index"));
    const transfer = server.snapshot_transfer;
    if (transfer) {
      const box = el("div", null, "snapshot-transfer");
      box.append(el("span", "receiving a snapshot: " +
        bytes(transfer.bytes_sent) + " / " + bytes(transfer.size)));
      const bar = el("progress");
      bar.max = Math.max(transfer.size, 1);
      bar.value = transfer.bytes_sent;
      box.append(bar);
      td.append(box);
    }
    return td;
  }

  function entryRow(entry) {
    const tr = el("tr");
    tr.append(el("td", entry.index), el("td", entry.term), el("td", entry.type));
    tr.append(el("td", entry.type === "noop" ? "(no-op)" : entry.command, "command"));
    return tr;
  }

  // The charts (uPlot, served from this project's static files): one per
  // series of the node's history, redrawn with each poll.
  const charts = {};

  function chart(id, series, data) {
    const target = document.getElementById(id);
    if (!target || typeof uPlot === "undefined") return;
    const width = Math.max(240, Math.min(420, target.clientWidth || 360));
    const key = id + ":" + series.map((s) => s.label).join(",");
    if (!charts[id] || charts[id].key !== key) {
      if (charts[id]) charts[id].plot.destroy();
      const opts = {
        width: width,
        height: 140,
        legend: { show: series.length > 1 },
        series: [{}].concat(series),
        axes: [{}, { size: 50 }],
      };
      charts[id] = { key: key, plot: new uPlot(opts, data, target) };
    } else {
      charts[id].plot.setData(data);
    }
  }

  const COLORS = ["#417690", "#ba2121", "#5b80b2", "#e0a800", "#2b8a3e"];

  function drawHistory(history) {
    if (!history || !history.time.length) return;
    const t = history.time;
    chart("chart-commits", [{ label: "commits/s", stroke: COLORS[0] }],
      [t, history.commits_per_s]);
    chart("chart-leaders", [{ label: "leader changes", stroke: COLORS[1] }],
      [t, history.leader_changes]);
    const peers = Object.keys(history.lag);
    if (peers.length) {
      chart("chart-lag",
        peers.map((p, i) => ({ label: p, stroke: COLORS[i % COLORS.length] })),
        [t].concat(peers.map((p) => history.lag[p])));
    }
  }

  function render(snapshot) {
    drawHistory(snapshot.history);
    const summary = document.getElementById("summary");
    summary.replaceChildren(
      "This node ", el("strong", snapshot.node), " is ", el("strong", snapshot.role),
      " in term " + snapshot.term + "; leader: ",
      el("strong", snapshot.leader || "none known"),
      "; commit index " + snapshot.commit_index +
      ", last applied " + snapshot.last_applied +
      (snapshot.snapshot_index
        ? ", snapshot " + snapshot.snapshot_index + ", log from " + snapshot.first_log_index
        : "") + "; " + snapshot.keys + " keys, " +
      snapshot.kv_reads_per_s.toFixed(1) + " key reads/s here."
    );
    fillRows(document.querySelector("#servers tbody"),
      snapshot.servers.map((server) => serverRow(server, snapshot)));
    const note = document.getElementById("progress-note");
    if (snapshot.progress_from) {
      note.textContent = "Match index, last contact and snapshot transfers as the leader " +
        snapshot.progress_from + " sees them.";
    } else if (snapshot.progress_error) {
      note.textContent = "The leader's view is unavailable: " + snapshot.progress_error + ".";
    } else {
      note.textContent = "No leader known: no match indexes to show.";
    }
    const entries = snapshot.entries.map(entryRow);
    if (!entries.length) {
      const empty = el("tr");
      empty.append(el("td", "No committed entries yet."));
      entries.push(empty);
    }
    fillRows(document.querySelector("#entries tbody"), entries);
  }

  function loggedOut() {
    stopped = true;
    refresh.replaceChildren("Your login has ended: ",
      Object.assign(el("a", "log in again"), { href: window.location.href }), ".");
    refresh.className = "refresh-status error";
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const response = await fetch(dataUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) return loggedOut();
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || "HTTP " + response.status);
      render(body);
      refresh.textContent = "Live: updated " + new Date().toLocaleTimeString() + ".";
      refresh.className = "refresh-status";
    } catch (error) {
      refresh.textContent = "Cannot refresh from this node: " + error.message;
      refresh.className = "refresh-status error";
    }
    if (!stopped) timer = setTimeout(poll, pollMs);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    outcome.textContent = "Sending\u2026";
    outcome.className = "outcome";
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: {
          Accept: "application/json",
          "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
        },
        credentials: "same-origin",
      });
      if (response.status === 401) return loggedOut();
      const body = await response.json().catch(() => null);
      if (!body) {
        // Not the view's JSON: Django refused the form (CSRF) before any
        // sending, or the server failed somewhere unknown.
        outcome.textContent = response.status === 403
          ? "Refused (HTTP 403): reload the page and try again; nothing was sent."
          : "No usable answer (HTTP " + response.status + "): the command may or may not commit.";
        outcome.className = "outcome error";
      } else if (body.ok) {
        outcome.textContent = body.text + ".";
        outcome.className = "outcome success";
        form.reset();
      } else {
        outcome.textContent = "Not committed: " + body.error;
        outcome.className = "outcome error";
      }
    } catch (error) {
      outcome.textContent = "Outcome unknown: no answer from this node (" +
        error.message + "); the command may or may not commit.";
      outcome.className = "outcome error";
    } finally {
      button.disabled = false;
    }
    poll();
  });

  const initial = JSON.parse(document.getElementById("dashboard-snapshot").textContent);
  if (initial) render(initial);
  poll();
})();
