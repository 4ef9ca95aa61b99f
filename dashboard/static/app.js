// The dashboard's shell: log in, then the views this member's organisation and roles call for.
// Every figure comes from the /v1 API with the member's token; the API decides what is shown.
import * as api from "./api.js";
import { h, failure } from "./dom.js";

const VIEWS = {
  traffic: { title: "Traffic", load: () => import("./views/traffic.js") },
  fleet: { title: "Fleet", load: () => import("./views/fleet.js") },
  certificates: { title: "Certificates", load: () => import("./views/certificates.js") },
  ledger: { title: "Ledger", load: () => import("./views/ledger.js") },
};
const DATA_ROLES = ["admin", "analyst", "auditor", "insurer"];

let me = null;
let running = null; // AbortController of the view on screen (its streams and timers)

function viewsOf(principal) {
  const data = principal.roles.some((r) => DATA_ROLES.includes(r));
  const shown = [];
  if (data && principal.org_kind === "authority") shown.push("traffic");
  if (data && principal.org_kind === "fleet_owner") shown.push("fleet", "traffic");
  if (data && principal.org_kind === "insurer") shown.push("certificates", "traffic");
  if (data && !shown.length) shown.push("traffic");
  shown.push("ledger");
  return shown;
}

async function show() {
  running?.abort();
  running = new AbortController();
  const allowed = viewsOf(me);
  const name = allowed.includes(location.hash.slice(1)) ? location.hash.slice(1) : allowed[0];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  const view = document.getElementById("view");
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  view.dataset.view = name;
  try {
    const module = await VIEWS[name].load();
    await module.render(view, me, running.signal);
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 401) return loggedOut();
    view.replaceChildren(failure(error));
  }
}

function loggedOut() {
  running?.abort();
  api.forget();
  me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("view").replaceChildren();
  document.getElementById("login").hidden = false;
}

async function start() {
  try {
    me = await api.get("/v1/auth/me");
  } catch {
    return loggedOut();
  }
  document.getElementById("login").hidden = true;
  const nav = document.getElementById("nav");
  nav.replaceChildren(...viewsOf(me).map((name) =>
    h("a", { href: `#${name}`, "data-view": name }, VIEWS[name].title)));
  nav.hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = `${me.username} · ${me.org_id} (${me.roles.join(", ")})`;
  await show();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await api.login(form.username.value, form.password.value);
    form.reset();
    await start();
  } catch (failed) {
    error.textContent = failed.status === 401 ? "Wrong username or password." : failed.message;
  }
});
document.getElementById("logout").addEventListener("click", async () => {
  await api.logout();
  loggedOut();
});
window.addEventListener("hashchange", () => { if (me) show(); });

if (api.loggedIn()) start(); else loggedOut();
