// Live debugger: events and refusals as they are stored, from GET /api/v1/live (SSE read
// with fetch, since EventSource cannot send the Authorization header).

import {api, data, followStream, enc} from '../api.js';
import {h, clear, errorBox, field, fmtTime, prettyJson, table} from '../dom.js';

const MAX_ITEMS = 300;
const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'];

function itemTitle(item) {
  if (item.kind === 'rejected') return `Rejected: ${item.rejection.reason}`;
  const e = item.event;
  if (e.type === 'track') return e.event || '(track without a name)';
  if (e.type === 'page' || e.type === 'screen') return e.name ? `${e.type} ${e.name}` : e.type;
  if (e.type === 'group') return `group ${e.groupId ?? ''}`;
  return e.type;
}

function itemWho(item) {
  if (item.kind === 'rejected') return item.rejection.message;
  const e = item.event;
  return e.userId ? `user ${e.userId}` : (e.anonymousId ? `anonymous ${e.anonymousId}` : '');
}

function itemTime(item) {
  const when = item.kind === 'rejected' ? item.rejection.receivedAt : (item.event.receivedAt || item.event.timestamp);
  return when ? new Date(when).toLocaleTimeString() : '';
}

function detailOf(item, sourceName) {
  if (item.kind === 'rejected') {
    const r = item.rejection;
    return [
      h('h2', {id: 'detail-title'}, 'Rejected event'),
      h('dl', {class: 'facts'},
        h('dt', null, 'Reason'), h('dd', null, h('code', null, r.reason)),
        h('dt', null, 'Message'), h('dd', null, r.message),
        h('dt', null, 'Source'), h('dd', null, sourceName(item.sourceId)),
        h('dt', null, 'Received'), h('dd', null, fmtTime(r.receivedAt)),
        r.messageId ? [h('dt', null, 'messageId'), h('dd', null, h('code', null, r.messageId))] : null,
        r.index !== null && r.index !== undefined ? [h('dt', null, 'Position in batch'), h('dd', null, String(r.index))] : null),
      r.event ? [h('h3', null, 'As sent'), prettyJson(r.event)] : null,
      r.excerpt ? [h('h3', null, 'Body excerpt'), h('pre', {class: 'json', tabindex: 0}, r.excerpt)] : null,
    ];
  }
  const e = item.event;
  const trace = h('div', {class: 'trace', 'aria-live': 'polite'});
  const traceBtn = h('button', {type: 'button', class: 'small'}, 'Show what happened to it');
  traceBtn.addEventListener('click', async () => {
    traceBtn.disabled = true;
    try {
      const body = await api(`/api/v1/trace/${enc(e.messageId)}`);
      clear(trace, table('Trace', [
        {label: 'When', value: s => fmtTime(s.at)},
        {label: 'Step', value: s => h('code', null, s.step)},
        {label: 'Destination', value: s => s.destination || ''},
        {label: 'Why', value: s => [s.reason ? h('code', null, s.reason) : '', s.detail ? ` ${s.detail}` : '']},
      ], body.steps || []));
    } catch (err) {
      clear(trace, errorBox(err));
    } finally {
      traceBtn.disabled = false;
    }
  });
  return [
    h('h2', {id: 'detail-title'}, itemTitle(item)),
    h('dl', {class: 'facts'},
      h('dt', null, 'Type'), h('dd', null, e.type),
      h('dt', null, 'Source'), h('dd', null, sourceName(item.sourceId)),
      h('dt', null, 'Received'), h('dd', null, fmtTime(e.receivedAt)),
      h('dt', null, 'messageId'), h('dd', null, h('code', null, e.messageId))),
    h('div', {class: 'actions'}, traceBtn),
    trace,
    prettyJson(e),
  ];
}

export async function renderLive(view, ctx) {
  const sources = await data('/api/v1/sources', {signal: ctx.signal});
  const names = Object.fromEntries(sources.map(s => [s.id, s.name]));
  const sourceName = id => names[id] || id;

  const sourceSel = h('select', {name: 'source'}, h('option', {value: ''}, 'All sources'),
    sources.map(s => h('option', {value: s.id}, s.name)));
  sourceSel.value = ctx.query.get('source') || '';
  const typeSel = h('select', {name: 'type'}, h('option', {value: ''}, 'All types'), EVENT_TYPES.map(t => h('option', {value: t}, t)));
  typeSel.value = ctx.query.get('type') || '';
  const eventInput = h('input', {type: 'search', name: 'event', placeholder: 'e.g. Order Completed', value: ctx.query.get('event') || ''});
  const rejectedBox = h('input', {type: 'checkbox', name: 'rejected', checked: ctx.query.get('rejected') !== '0'});
  const pauseBtn = h('button', {type: 'button', class: 'primary', 'aria-pressed': 'false'}, 'Pause');
  const clearBtn = h('button', {type: 'button'}, 'Clear');
  const state = h('p', {class: 'stream-state', role: 'status'}, 'Connecting…');
  const list = h('ol', {class: 'live-list', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Events, newest first'});
  const detail = h('section', {class: 'card live-detail', 'aria-labelledby': 'detail-title', tabindex: '-1'},
    h('h2', {id: 'detail-title'}, 'Event'), h('p', {class: 'empty'}, 'Select an event to see its JSON.'));
  const filters = h('form', {class: 'filters', 'aria-label': 'Filter the stream'},
    field('Source', sourceSel), field('Type', typeSel), field('Event name', eventInput),
    field('Show rejected events', rejectedBox),
    h('button', {type: 'submit'}, 'Apply filters'));

  clear(view,
    h('h1', null, 'Live debugger'),
    filters,
    h('div', {class: 'live-controls'}, pauseBtn, clearBtn, state),
    h('div', {class: 'live-grid'}, h('section', {class: 'card', 'aria-label': 'Stream'}, list), detail));

  let paused = false;
  let held = [];
  let heldCount = 0;
  let delay = 1000;
  let lastId = null;
  let selected = null;
  let stream = null;

  function add(item) {
    const rejected = item.kind === 'rejected';
    const btn = h('button', {type: 'button', class: 'live-item'},
      h('span', {class: `badge ${rejected ? 'bad' : 'ok'}`}, rejected ? 'rejected' : item.event.type),
      h('span', {class: 'live-name'}, itemTitle(item)),
      h('span', {class: 'live-who'}, itemWho(item)),
      h('span', {class: 'live-meta'}, `${sourceName(item.sourceId)} · ${itemTime(item)}`));
    btn.addEventListener('click', () => {
      selected?.classList.remove('selected');
      if (selected) selected.tabIndex = -1;
      btn.tabIndex = 0;
      selected?.removeAttribute('aria-current');
      selected = btn;
      btn.classList.add('selected');
      btn.setAttribute('aria-current', 'true');
      clear(detail, detailOf(item, sourceName));
      if (window.matchMedia('(max-width: 900px)').matches) detail.focus();
    });
    btn.tabIndex = -1;
    const li = h('li', {class: rejected ? 'rejected' : ''}, btn);
    list.prepend(li);
    while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
    syncTabStop();
  }

  // one tab stop for the whole list (the selected event, else the newest); arrows move in it
  function items() { return [...list.querySelectorAll('.live-item')]; }
  function syncTabStop() {
    const all = items();
    const stop = (selected && selected.isConnected) ? selected : all[0];
    for (const b of all) b.tabIndex = b === stop ? 0 : -1;
  }
  list.addEventListener('keydown', (ev) => {
    const all = items();
    const at = all.indexOf(document.activeElement);
    if (at < 0) return;
    const to = {ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: all.length - 1}[ev.key];
    if (to === undefined) return;
    ev.preventDefault();
    const target = all[Math.max(0, Math.min(all.length - 1, to))];
    all[at].tabIndex = -1;
    target.tabIndex = 0;
    target.focus();
  });

  function setState(text) { state.textContent = text; }

  function onMessage(msg) {
    if (msg.event !== 'event' && msg.event !== 'rejected') return;
    const item = JSON.parse(msg.data);
    lastId = item.id;
    delay = 1000; // the connection works: a later drop retries quickly again
    if (paused) {
      held.push(item);
      heldCount += 1;
      if (held.length > MAX_ITEMS) held.shift();
      setState(`Paused · ${heldCount} new event(s) waiting`);
    } else {
      add(item);
    }
  }

  function query(after) {
    const q = new URLSearchParams();
    if (sourceSel.value) q.set('source', sourceSel.value);
    if (typeSel.value) q.append('type', typeSel.value);
    if (eventInput.value.trim()) q.append('event', eventInput.value.trim());
    if (!rejectedBox.checked) q.set('rejected', '0');
    if (after !== null) q.set('after', after);
    else q.set('recent', '50');
    return q;
  }

  async function connect() {
    stream?.abort();
    const mine = new AbortController();
    stream = mine;
    ctx.signal.addEventListener('abort', () => mine.abort(), {once: true});
    delay = 1000;
    while (!mine.signal.aborted) {
      setState(paused ? 'Paused' : 'Live: waiting for events…');
      try {
        await followStream(`/api/v1/live?${query(lastId)}`, onMessage, mine.signal);
        setState('The server closed the stream; reconnecting…');
      } catch (err) {
        if (mine.signal.aborted) return;
        if (err.status && err.status < 500) {
          clear(state, errorBox(err));
          return;
        }
        setState(`Disconnected (${err.message}); reconnecting…`);
      }
      await new Promise(resolve => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      for (const item of held) add(item);
      held = [];
      heldCount = 0;
      setState('Live: waiting for events…');
    } else {
      setState('Paused');
    }
  });
  clearBtn.addEventListener('click', () => {
    list.replaceChildren();
    held = [];
    heldCount = 0;
  });
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = query(null);
    q.delete('recent');
    history.replaceState(null, '', `#/live?${q}`);
    list.replaceChildren();
    lastId = null;
    connect();
  });

  connect();
}
