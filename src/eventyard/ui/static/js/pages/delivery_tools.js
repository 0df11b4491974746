// The tools on a destination's page: connected sources, dead letters with re-send, replay.

import {api, enc} from '../api.js';
import {h, add, clear, errorBox, field, fmtNumber, fmtTime, notice, prettyJson, table} from '../dom.js';

export function connectionsCard(ctx, dest, sources, connections, reload) {
  const mine = connections.filter(c => c.destinationId === dest.id);
  const names = Object.fromEntries(sources.map(s => [s.id, s.name]));
  const status = h('div', {class: 'form-status'});
  const pick = h('select', {name: 'source'}, sources.filter(s => !mine.some(c => c.sourceId === s.id)).map(s => h('option', {value: s.id}, s.name)));
  const canWrite = ctx.me.role !== 'viewer';
  const form = h('form', {class: 'inline-form'}, field('Source', pick), h('button', {type: 'submit'}, 'Connect'), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    try {
      await api('/api/v1/connections', {method: 'PUT', body: {source: pick.value, destination: dest.id}});
      ctx.announce('Source connected');
      reload();
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  const disconnect = (c) => {
    const btn = h('button', {type: 'button', class: 'small', 'aria-label': `Disconnect ${names[c.sourceId] || c.sourceId}`}, 'Disconnect');
    btn.addEventListener('click', async () => {
      clear(status);
      try {
        await api(`/api/v1/connections?source=${enc(c.sourceId)}&destination=${enc(dest.id)}`, {method: 'DELETE'});
        reload();
      } catch (err) {
        status.append(errorBox(err));
      }
    });
    return btn;
  };
  return h('section', {class: 'card', 'aria-labelledby': 'conn-title'},
    h('h2', {id: 'conn-title'}, 'Connected sources'),
    table('!Connected sources', [
      {label: 'Source', value: c => names[c.sourceId] || c.sourceId},
      {label: 'Filters', value: c => (c.filters && c.filters.length ? h('code', null, JSON.stringify(c.filters)) : 'none')},
      ...(canWrite ? [{label: 'Action', value: disconnect}] : []),
    ], mine, {empty: 'No source sends to this destination yet.'}),
    canWrite && pick.options.length ? form : status);
}

export async function deadLettersCard(ctx, dest) {
  const box = h('section', {class: 'card', 'aria-labelledby': 'dl-title'});
  const status = h('div', {class: 'form-status', 'aria-live': 'polite'});
  const body = await api(`/api/v1/destinations/${enc(dest.id)}/dead-letters?limit=100`, {signal: ctx.signal});
  const items = body.data || [];
  const checks = new Map();
  const canWrite = ctx.me.role !== 'viewer';
  const resend = async (payload) => {
    clear(status);
    try {
      const result = await api(`/api/v1/destinations/${enc(dest.id)}/dead-letters/resend`, {method: 'POST', body: payload});
      status.append(notice('ok', `${fmtNumber(result.resent)} event(s) queued again.`));
      ctx.announce(`${result.resent} dead letters re-sent`);
    } catch (err) {
      status.append(errorBox(err));
    }
  };
  const selectedBtn = h('button', {type: 'button'}, 'Re-send selected');
  selectedBtn.addEventListener('click', () => {
    const ids = [...checks].filter(([, c]) => c.checked).map(([id]) => id);
    if (!ids.length) {
      clear(status, notice('error', 'Select at least one dead letter.'));
      return;
    }
    resend({ids});
  });
  const allBtn = h('button', {type: 'button'}, 'Re-send all');
  allBtn.addEventListener('click', () => resend({all: true}));
  add(box,
    h('h2', {id: 'dl-title'}, 'Dead letters'),
    table('!Dead letters', [
      ...(canWrite ? [{label: 'Select', value: d => {
        const c = h('input', {type: 'checkbox', 'aria-label': `Select dead letter ${d.id}`});
        checks.set(d.id, c);
        return c;
      }}] : []),
      {label: 'messageId', value: d => h('code', null, d.messageId)},
      {label: 'Error', value: d => d.error},
      {label: 'Attempts', value: d => String(d.attempts)},
      {label: 'Queued', value: d => fmtTime(d.queuedAt)},
      {label: 'Payload', value: d => h('details', null, h('summary', null, 'JSON'), prettyJson(d.payload))},
    ], items, {empty: 'No dead letters.'}),
    body.next ? h('p', {class: 'hint'}, 'Showing the first 100; re-send all covers every one.') : null,
    canWrite && items.length ? h('div', {class: 'actions'}, selectedBtn, allBtn) : null,
    status);
  return box;
}

export function replayCard(ctx, dest, sources) {
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const from = h('input', {type: 'datetime-local', name: 'from', required: true, value: local(new Date(Date.now() - 3600 * 1000))});
  const to = h('input', {type: 'datetime-local', name: 'to'});
  const src = h('select', {name: 'source'}, h('option', {value: ''}, 'All connected sources'), sources.map(s => h('option', {value: s.id}, s.name)));
  const status = h('div', {class: 'form-status', 'aria-live': 'polite'});
  const form = h('form', {class: 'card', 'aria-labelledby': 'replay-title'},
    h('h2', {id: 'replay-title'}, 'Replay'),
    h('p', null, 'Send the stored events of a time range to this destination again (filters and mappings apply).'),
    h('div', {class: 'row'}, field('From', from), field('To', to, 'Empty: until now.'), field('Source', src)),
    h('button', {type: 'submit'}, 'Replay'),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    if (!from.value) {
      status.append(notice('error', 'Choose where the replay starts.'));
      return;
    }
    const body = {from: new Date(from.value).toISOString()};
    if (to.value) body.to = new Date(to.value).toISOString();
    if (src.value) body.sources = [src.value];
    try {
      const r = await api(`/api/v1/destinations/${enc(dest.id)}/replay`, {method: 'POST', body});
      status.append(notice('ok', `Read ${fmtNumber(r.read)} event(s), queued ${fmtNumber(r.queued)}, filtered ${fmtNumber(r.filtered)}.`));
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  return form;
}
