// PhoenixTwin web console: chat over the gateway's WebSocket, HITL approvals, live telemetry.
// Authentication is the gateway's HttpOnly session cookie (set by /api/session or, for
// `make run`, by the local autologin); this script never sees or stores an API key.
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
};

function sessionId() {
  let id = localStorage.getItem("pagi_session_id");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("pagi_session_id", id);
  }
  return id;
}

function addLine(kind, text, meta) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  if (meta) {
    const small = document.createElement("span");
    small.className = "meta";
    small.textContent = meta;
    item.appendChild(small);
  }
  $("log").appendChild(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function setConnection(online) {
  const badge = $("connection");
  badge.textContent = online ? "online" : "offline";
  badge.classList.toggle("online", online);
}

function send(message) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    addLine("error", "Not connected to the gateway.");
    return;
  }
  state.socket.send(JSON.stringify({
    session_id: state.sessionId,
    user_id: state.twinId,
    timestamp: new Date().toISOString(),
    message,
  }));
  addLine("user", message);
}

function onFrame(frame) {
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
  addLine(frame.status === "error" ? "error" : "twin", frame.content,
    `${frame.latency_ms} ms${memories}`);
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
  $("approval-dialog").showModal();
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
  // ?busy=true: a "busy" status before each reply disables the send button meanwhile.
  const socket = new WebSocket(
    `${scheme}://${location.host}/ws/chat/${encodeURIComponent(state.twinId)}?busy=true`);
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
  $("approval-dialog").addEventListener("close", () => {
    const command = state.pending;
    state.pending = null;
    const decision = $("approval-dialog").returnValue;
    if (!command || (decision !== "approve" && decision !== "deny")) return;  // Esc: undecided
    send(approvalMessage(command, decision === "approve"));
  });
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
