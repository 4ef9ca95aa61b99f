// The page's only way to data: the authenticated /v1 API of this origin. Tokens live in
// sessionStorage (gone when the tab closes); an expired access token is refreshed once.
const KEY = "roadledger.session";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function stored() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}

function keep(tokens) {
  const expiresAt = Date.now() + tokens.expires_in * 1000;
  sessionStorage.setItem(KEY, JSON.stringify({
    access: tokens.access_token, refresh: tokens.refresh_token, expiresAt,
  }));
}

export function loggedIn() { return stored() !== null; }

export function forget() { sessionStorage.removeItem(KEY); }

async function detail(response) {
  try { return (await response.json()).detail ?? response.statusText; } catch { return response.statusText; }
}

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const response = await fetch("/v1/auth/token", { method: "POST", body });
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  keep(await response.json());
}

let refreshing = null;

async function refresh() {
  // One refresh at a time: a refresh token works once, a second use revokes the session.
  refreshing ??= (async () => {
    const session = stored();
    if (!session) throw new ApiError(401, "not logged in");
    const response = await fetch("/v1/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (!response.ok) { forget(); throw new ApiError(response.status, await detail(response)); }
    keep(await response.json());
  })().finally(() => { refreshing = null; });
  return refreshing;
}

async function authorised(path, init = {}, retry = true) {
  let session = stored();
  if (!session) throw new ApiError(401, "not logged in");
  if (session.expiresAt - Date.now() < 10_000) { await refresh(); session = stored(); }
  const headers = { ...(init.headers || {}), Authorization: `Bearer ${session.access}` };
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401 && retry) { await refresh(); return authorised(path, init, false); }
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  return response;
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export async function get(path, params) { return (await authorised(url(path, params))).json(); }

// Every item of a paginated list, page after page (1000 a page).
export async function every(path, params = {}) {
  const found = [];
  let cursor = null;
  do {
    const page = await get(path, { ...params, limit: 1000, cursor });
    found.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return found;
}

export async function text(path, params) { return (await authorised(url(path, params))).text(); }

export async function send(method, path, body) {
  const response = await authorised(path, {
    method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body ?? {}),
  });
  return response.status === 204 ? null : response;
}

export async function post(path, body) { return (await send("POST", path, body)).json(); }

export async function logout() {
  try { await authorised("/v1/auth/revoke", { method: "POST" }, false); } catch { /* ended anyway */ }
  forget();
}

// Server-Sent Events with the Authorization header (EventSource cannot send one): fetch and
// read the body stream. Reconnects after `retryMs` until `signal` aborts.
export async function stream(path, onEvent, signal, retryMs = 2000) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const headers = lastId ? { "Last-Event-ID": lastId } : {};
      const response = await authorised(path, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { event: "message", data: [] };
          for (const line of block.split("\n")) {
            if (line.startsWith(":") || !line) continue;
            const at = line.indexOf(":");
            const field = at < 0 ? line : line.slice(0, at);
            const data = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
            if (field === "data") event.data.push(data);
            else if (field === "event") event.event = data;
            else if (field === "id") lastId = data;
          }
          if (event.data.length) onEvent(event.event, JSON.parse(event.data.join("\n")));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status !== 503) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}
