// Calls to eventyard's control API. Every request carries `Authorization: Bearer <token>`;
// errors come back as {"code", "message"} and are thrown as ApiError so pages can show them.

const TOKEN_KEY = 'eventyard.console.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The token lives in sessionStorage: it is gone when the tab closes. */
export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

/** Called with the ApiError when the server says the token is no good (401). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) { onUnauthorized = handler; }

function headers(extra = {}, token = session.token) {
  return {Authorization: `Bearer ${token || ''}`, ...extra};
}

async function errorOf(resp) {
  const text = await resp.text().catch(() => '');
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  // the control API answers {"code", "message"}; the Segment-shaped regulations API
  // answers {"errors": [{"type", "message", "field"?}]}
  const first = body && Array.isArray(body.errors) && body.errors[0] ? body.errors[0] : null;
  const code = body && typeof body.code === 'string' ? body.code : (first?.type || `http_${resp.status}`);
  let message = body && typeof body.message === 'string' ? body.message : first?.message;
  if (first && first.field) message = `${message} (${first.field})`;
  if (!message) message = text.trim().slice(0, 300) || resp.statusText || `HTTP ${resp.status}`;
  return new ApiError(resp.status, code, message);
}

function networkError(err) {
  return new ApiError(0, 'network_error', `the server could not be reached (${err.message})`);
}

/**
 * api('/api/v1/sources') -> the decoded JSON body. Options: method, body (sent as JSON),
 * signal, token (to try a token before keeping it).
 */
export async function api(path, {method = 'GET', body, signal, token} = {}) {
  const extra = {Accept: 'application/json'};
  if (body !== undefined) extra['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: headers(extra, token ?? session.token),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw networkError(err);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && token === undefined) onUnauthorized(err);
    throw err;
  }
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** `data` of an API answer, whether the endpoint wraps it ({"data": ...}) or not. */
export async function data(path, options) {
  const body = await api(path, options);
  return body && typeof body === 'object' && 'data' in body ? body.data : body;
}

/**
 * Incremental Server-Sent Events parser (the parts eventyard uses: id, event, data,
 * comments). push() takes text chunks as they arrive; onMessage gets {id, event, data}.
 */
export class SseParser {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.id = null;
    this.event = 'message';
    this.data = [];
  }

  push(chunk) {
    this.buffer += chunk;
    let nl;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      let line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onMessage({id: this.id, event: this.event, data: this.data.join('\n')});
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // a comment (keepalive)
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.event = value;
    else if (name === 'id') this.id = value;
  }
}

/**
 * Follow an SSE endpoint with fetch() (EventSource cannot send the Authorization header).
 * Resolves when the server ends the stream; rejects with ApiError on an error answer.
 */
export async function followStream(path, onMessage, signal) {
  let resp;
  try {
    resp = await fetch(path, {headers: headers({Accept: 'text/event-stream'}), signal, cache: 'no-store'});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw networkError(err);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401) onUnauthorized(err);
    throw err;
  }
  const parser = new SseParser(onMessage);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      parser.push(value);
    }
  } finally {
    reader.releaseLock();
  }
}

export const enc = encodeURIComponent;
