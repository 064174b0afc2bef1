// PhoenixTwin web console: chat over the gateway's WebSocket, HITL approvals, live telemetry.
// Authentication is the gateway's HttpOnly session cookie (set by /api/session or, for
// `make run`, by the local autologin); this script never sees or stores an API key.
// Replies stream (?stream=true: message_chunk frames, then the complete_message with the same
// id). A request with an id is decided by id ("approval_decision" frames): approve once or for
// the session, with the arguments as edited, or deny with a reason; the orchestrator checks the
// edited call again and refuses a decision made on arguments that changed since (stale).
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_POINTS = 100;
const RECONNECT_ATTEMPTS = 5;
const RECONNECT_DELAY_MS = 3000;
const APPROVALS = new Set(["show_memory_page", "execute_tool", "prompt_for_config"]);

const state = {
  twinId: null,
  sessionId: null,
  socket: null,
  attempts: 0,
  seen: new Set(),
  pending: null,
  points: [],
  events: null,
  streaming: new Map(),  // reply id -> its log line, while chunks arrive
  chunksSeen: 0,
};

function sessionId() {
  let id = localStorage.getItem("pagi_session_id");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("pagi_session_id", id);
  }
  return id;
}

function fillLine(item, kind, text, meta) {
  item.className = kind;
  item.textContent = text;
  if (meta) {
    const small = document.createElement("span");
    small.className = "meta";
    small.textContent = meta;
    item.appendChild(small);
  }
  item.scrollIntoView({ block: "end" });
  return item;
}

function addLine(kind, text, meta) {
  const item = document.createElement("li");
  $("log").appendChild(item);
  return fillLine(item, kind, text, meta);
}

function onChunk(frame) {
  state.chunksSeen += 1;
  let item = state.streaming.get(frame.id);
  if (!item) {
    item = addLine("twin streaming", "");
    state.streaming.set(frame.id, item);
  }
  item.textContent += frame.content_chunk;
  item.scrollIntoView({ block: "end" });
}

function setConnection(online) {
  const badge = $("connection");
  badge.textContent = online ? "online" : "offline";
  badge.classList.toggle("online", online);
}

function sendFrame(frame) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    addLine("error", "Not connected to the gateway.");
    return false;
  }
  state.socket.send(JSON.stringify({
    session_id: state.sessionId,
    user_id: state.twinId,
    timestamp: new Date().toISOString(),
    ...frame,
  }));
  return true;
}

function send(message) {
  if (sendFrame({ message })) addLine("user", message);
}

function sendDecision(command, choice, edited, reason) {
  const frame = {
    type: "approval_decision",
    request_id: command.request_id,
    decision: choice === "deny" ? "deny" : "approve",
  };
  if (choice === "approve-session") frame.scope = "session";
  if (edited) frame.arguments = edited;
  if (reason) frame.reason = reason;
  if (command.arguments_hash) frame.arguments_hash = command.arguments_hash;
  const what = command.command === "execute_tool" ? `tool ${command.tool_name}` : "memory search";
  const said = {
    "approve": `Approved ${what} once${edited ? " (edited)" : ""}`,
    "approve-session": `Approved ${what} for this session${edited ? " (edited)" : ""}`,
    "deny": `Denied ${what}${reason ? `: ${reason}` : ""}`,
  }[choice];
  if (sendFrame(frame)) addLine("user", said);
}

function onFrame(frame) {
  if (frame.type === "message_chunk") { onChunk(frame); return; }
  if (frame.type === "status_update") {
    if (frame.status === "busy") {
      $("send").disabled = true;
      return;
    }
    $("send").disabled = false;
    if (frame.status === "error") addLine("error", frame.details);
    return;
  }
  if (frame.type !== "complete_message") return;
  $("send").disabled = false;
  const memories = frame.source_memories && frame.source_memories.length
    ? ` · memories: ${frame.source_memories.join(", ")}` : "";
  const kind = frame.status === "error" ? "error" : "twin";
  const meta = `${frame.latency_ms} ms${memories}`;
  const streamed = state.streaming.get(frame.id);
  state.streaming.delete(frame.id);
  if (streamed) fillLine(streamed, kind, frame.content, meta); else addLine(kind, frame.content, meta);
  const command = frame.issued_command;
  if (command && APPROVALS.has(command.command) && !state.seen.has(frame.id)) {
    state.seen.add(frame.id);
    openApproval(command, frame.raw_orchestrator_decision);
  }
}

function openApproval(command, rawDecision) {
  state.pending = command;
  let summary = "";
  if (command.command === "execute_tool") {
    summary = `Run tool "${command.tool_name}" with ${JSON.stringify(command.arguments || {})}`;
  } else if (command.command === "show_memory_page") {
    summary = `Search memory for "${command.query}" (request ${command.memory_id})`;
  } else {
    summary = `Configuration "${command.config_key}": ${command.prompt}`;
  }
  $("approval-title").textContent = command.command === "execute_tool"
    ? "Approve tool execution?" : "Approve memory access?";
  $("approval-summary").textContent = summary;
  let pretty = rawDecision || "(no decision trace)";
  try { pretty = JSON.stringify(JSON.parse(rawDecision), null, 2); } catch (_) { /* raw text */ }
  $("decision").textContent = pretty;
  const byId = Boolean(command.request_id) && command.command !== "prompt_for_config";
  const editable = byId && command.command === "execute_tool";
  $("arguments-editor").hidden = !editable;
  $("arguments").value = editable ? JSON.stringify(command.arguments || {}, null, 2) : "";
  $("reason").value = "";
  $("reason").disabled = !byId;
  $("approve-session").hidden = !byId;
  $("approval-error").textContent = "";
  $("approval-expiry").textContent = command.expires_at
    ? `Expires ${new Date(command.expires_at).toLocaleTimeString()}` +
      (command.on_timeout ? `, then ${command.on_timeout === "approve" ? "runs" : "is denied"}` : "")
    : "";
  $("approval-dialog").showModal();
}

// The edited arguments when they differ from the proposal, null when unchanged; throws a
// message a person can act on when the text is not a JSON object of strings.
function editedArguments(command) {
  if ($("arguments-editor").hidden) return null;
  let parsed;
  try { parsed = JSON.parse($("arguments").value); } catch (err) {
    throw new Error(`The arguments are not JSON: ${err.message}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)
      || !Object.values(parsed).every((v) => typeof v === "string")) {
    throw new Error("The arguments must be a JSON object of strings.");
  }
  const same = JSON.stringify(parsed) === JSON.stringify(command.arguments || {});
  return same ? null : parsed;
}

function approvalMessage(command, approved) {
  if (command.command === "execute_tool") {
    return approved ? `[TOOL_EXECUTED] ${command.tool_name} - CONFIRMED`
      : `[TOOL_DENIED] ${command.tool_name}`;
  }
  if (command.command === "show_memory_page") {
    return approved ? `[MEMORY_SHOWN] ${command.memory_id}` : `[MEMORY_DENIED] ${command.memory_id}`;
  }
  return approved ? `[CONFIG_RESPONSE] ${command.config_key}` : `[CONFIG_DENIED] ${command.config_key}`;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // ?busy=true: a "busy" status before each reply disables the send button meanwhile;
  // ?stream=true: the reply's text as it is written (message_chunk frames).
  const socket = new WebSocket(
    `${scheme}://${location.host}/ws/chat/${encodeURIComponent(state.twinId)}` +
    "?busy=true&stream=true");
  state.socket = socket;
  socket.addEventListener("open", () => { state.attempts = 0; setConnection(true); });
  socket.addEventListener("message", (event) => {
    try { onFrame(JSON.parse(event.data)); } catch (err) { console.error(err); }
  });
  socket.addEventListener("close", (event) => {
    setConnection(false);
    if (event.code === 1008) {
      addLine("error", "The gateway refused the session; sign in again.");
      showLogin();
      return;
    }
    if (state.attempts < RECONNECT_ATTEMPTS) {
      state.attempts += 1;
      setTimeout(connect, RECONNECT_DELAY_MS);
    }
  });
}

function drawTelemetry() {
  const canvas = $("telemetry-canvas");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#374151";
  for (let y = 0; y <= 4; y += 1) {
    ctx.beginPath(); ctx.moveTo(0, (height / 4) * y); ctx.lineTo(width, (height / 4) * y); ctx.stroke();
  }
  const series = [["cpu", "#f59e0b"], ["mem", "#38bdf8"]];
  for (const [key, colour] of series) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    const offset = MAX_POINTS - state.points.length;  // newest point at the right edge
    state.points.forEach((point, index) => {
      const x = ((offset + index) / (MAX_POINTS - 1)) * width;
      const y = height - (Math.min(100, Math.max(0, point[key])) / 100) * height;
      if (index === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
  canvas.dataset.points = String(state.points.length);
}

function startTelemetry() {
  if (state.events) state.events.close();
  const events = new EventSource("/v1/telemetry/stream");
  state.events = events;
  events.addEventListener("metrics", (event) => {
    const data = JSON.parse(event.data);
    const mem = data.mem_total ? (data.mem_used / data.mem_total) * 100 : 0;
    state.points.push({ cpu: data.cpu_percent, mem });
    if (state.points.length > MAX_POINTS) state.points.shift();
    $("telemetry-latest").textContent =
      `CPU ${data.cpu_percent.toFixed(1)}% · memory ${mem.toFixed(1)}% · ${data.process_count} processes`;
    drawTelemetry();
  });
}

function showLogin() {
  $("console").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("twin").textContent = "not signed in";
}

async function start() {
  const reply = await fetch("/api/whoami", { credentials: "same-origin" });
  if (reply.status === 401) { showLogin(); return; }
  const who = await reply.json();
  state.twinId = who.twin_id;
  state.sessionId = sessionId();
  $("twin").textContent = `twin ${who.twin_id}`;
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  connect();
  startTelemetry();
  drawTelemetry();
}

document.addEventListener("DOMContentLoaded", () => {
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value.trim();
    if (text) { send(text); $("message").value = ""; }
  });
  $("approval-dialog").querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const command = state.pending;
    const choice = event.submitter ? event.submitter.value : "";
    if (!command || !["approve", "approve-session", "deny"].includes(choice)) return;
    const byId = Boolean(command.request_id) && command.command !== "prompt_for_config";
    let edited = null;
    if (choice !== "deny") {
      try { edited = editedArguments(command); } catch (err) {
        $("approval-error").textContent = err.message;  // the dialog stays open
        return;
      }
    }
    state.pending = null;
    $("approval-dialog").close(choice);
    if (byId) sendDecision(command, choice, edited, $("reason").value.trim());
    else send(approvalMessage(command, choice !== "deny"));  // a request the original way
  });
  $("approval-dialog").addEventListener("close", () => { state.pending = null; });  // Esc
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reply = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: $("api-key").value }),
      credentials: "same-origin",
    });
    $("api-key").value = "";
    if (!reply.ok) { $("login-error").textContent = "That key was refused."; return; }
    $("login-error").textContent = "";
    start();
  });
  $("logout").addEventListener("click", async () => {
    await fetch("/api/session", { method: "DELETE", credentials: "same-origin" });
    if (state.socket) { state.attempts = RECONNECT_ATTEMPTS; state.socket.close(); }
    if (state.events) state.events.close();
    showLogin();
  });
  start();
});
