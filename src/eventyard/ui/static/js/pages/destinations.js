// Destinations: list, add/edit with a form generated from the type's settings schema,
// the delivery funnel; the page's other tools are in delivery_tools.js.

import {api, data, enc} from '../api.js';
import {h, clear, errorBox, field, fmtNumber, notice, prettyJson, table} from '../dom.js';
import {funnel, widthFor} from '../charts.js';
import {settingsFields} from '../schema_form.js';
import {connectionsCard, deadLettersCard, replayCard} from './delivery_tools.js';

function funnelRows(totals) {
  const rows = [{label: 'Received', value: totals.received || 0, kind: 'info'}];
  for (const [reason, n] of Object.entries(totals.filtered || {})) {
    rows.push({label: `Filtered: ${reason}`, value: n, kind: 'muted', indent: true});
  }
  rows.push(
    {label: 'Queued for delivery', value: totals.queued || 0, kind: 'info'},
    {label: 'Delivered', value: totals.delivered || 0, kind: 'ok'},
    {label: 'Retry attempts', value: totals.retrying || 0, kind: 'warn'},
    {label: 'Dead-lettered', value: totals.dead_lettered || 0, kind: 'bad'});
  for (const [reason, n] of Object.entries(totals.discarded || {})) {
    rows.push({label: `Discarded: ${reason}`, value: n, kind: 'bad', indent: true});
  }
  return rows;
}

function healthBadge(health) {
  const status = health?.status || 'healthy';
  const kind = status === 'healthy' ? 'ok' : (status === 'paused' ? 'muted' : 'bad');
  return h('span', {class: `badge ${kind}`, title: health?.reason || ''}, status);
}

async function loadTypes(signal) {
  const types = await data('/api/v1/destination-types', {signal});
  // an older server answered a plain list of names; such types get a JSON settings box
  return types.map(t => (typeof t === 'string' ? {type: t, settingsSchema: {type: 'object', properties: {}}} : t));
}

function destinationForm(ctx, types, sources, existing) {
  const status = h('div', {class: 'form-status'});
  const settingsBox = h('div');
  let fields = null;
  const name = h('input', {type: 'text', name: 'name', required: true, autocomplete: 'off', value: existing?.name ?? '', disabled: Boolean(existing)});
  const typeSel = h('select', {name: 'type', disabled: Boolean(existing)},
    existing ? null : h('option', {value: ''}, 'Choose a type…'),
    types.map(t => h('option', {value: t.type, disabled: Boolean(t.error)}, t.error ? `${t.type} (unavailable)` : t.type)));
  typeSel.value = existing?.type ?? '';
  const enabled = h('input', {type: 'checkbox', name: 'enabled', checked: existing ? existing.enabled : true});
  const connect = h('select', {name: 'connect'}, h('option', {value: ''}, 'No source for now'), sources.map(s => h('option', {value: s.id}, s.name)));

  function showSettings() {
    const t = types.find(x => x.type === typeSel.value);
    if (!t) {
      fields = null;
      clear(settingsBox);
      return;
    }
    fields = settingsFields(t.settingsSchema || {}, existing ? existing.settings : {}, {editing: Boolean(existing)});
    clear(settingsBox,
      h('fieldset', {class: 'settings'}, h('legend', null, `${t.type} settings`),
        t.description ? h('p', {class: 'hint'}, t.description) : null,
        fields.element));
  }
  typeSel.addEventListener('change', showSettings);
  showSettings();

  const form = h('form', {class: 'card dest-form', 'aria-labelledby': 'dest-form-title', novalidate: true},
    h('h2', {id: 'dest-form-title'}, existing ? 'Settings' : 'New destination'),
    field('Name', name, existing ? null : '1-64 letters, digits, dot, dash and underscore.'),
    field('Type', typeSel),
    settingsBox,
    field('Enabled', enabled),
    existing ? null : field('Connect a source', connect, 'Events of this source are routed to the new destination.'),
    status,
    h('button', {type: 'submit', class: 'primary'}, existing ? 'Save settings' : 'Add destination'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    if (!existing && (!name.value.trim() || !typeSel.value)) {
      status.append(notice('error', 'Give the destination a name and choose its type.'));
      return;
    }
    let settings;
    try {
      settings = fields ? fields.read() : {};
    } catch (err) {
      status.append(notice('error', err.message));
      return;
    }
    try {
      let saved;
      if (existing) {
        saved = (await api(`/api/v1/destinations/${enc(existing.id)}`, {method: 'PATCH', body: {settings, enabled: enabled.checked}})).data;
        status.append(notice('ok', 'Saved.'));
        ctx.announce(`Destination ${saved.name} saved`);
      } else {
        saved = (await api('/api/v1/destinations', {method: 'POST', body: {name: name.value.trim(), type: typeSel.value, settings, enabled: enabled.checked}})).data;
        if (connect.value) {
          await api('/api/v1/connections', {method: 'PUT', body: {source: connect.value, destination: saved.id}});
        }
        ctx.announce(`Destination ${saved.name} added`);
        ctx.go(`#/destinations/${enc(saved.id)}`);
      }
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  return form;
}

async function renderDestination(view, ctx, ref) {
  const [dests, types, sources, connections, overview] = await Promise.all([
    data('/api/v1/destinations', {signal: ctx.signal}),
    loadTypes(ctx.signal),
    data('/api/v1/sources', {signal: ctx.signal}),
    data('/api/v1/connections', {signal: ctx.signal}),
    api('/api/v1/overview?window=86400&bucket=3600', {signal: ctx.signal}),
  ]);
  const dest = dests.find(d => d.id === ref || d.name === ref);
  if (!dest) {
    clear(view, h('h1', null, 'Destination'), notice('error', `No destination with id or name ${ref}.`));
    return;
  }
  const ov = (overview.destinations || []).find(d => d.id === dest.id);
  const reload = () => renderDestination(view, ctx, ref).catch(err => view.append(errorBox(err)));
  const canWrite = ctx.me.role !== 'viewer';
  const delivery = h('section', {class: 'card', 'aria-labelledby': 'funnel-title'},
    h('div', {class: 'section-head'}, h('h2', {id: 'funnel-title'}, 'Delivery, last 24 hours'), ov ? healthBadge(ov.health) : null),
    ov ? [
      ov.health?.reason ? h('p', null, ov.health.reason) : null,
      (ov.alerts || []).map(a => notice('warn', a.message)),
      funnel(`Delivery funnel of ${dest.name}`, funnelRows(ov.totals), {width: widthFor(view) - 60}),
      h('p', {class: 'meta'},
        `Queue: ${fmtNumber(ov.queue.ready)} ready, ${fmtNumber(ov.queue.in_flight)} in flight, `,
        `${fmtNumber(ov.queue.waiting_retry)} waiting to retry, ${fmtNumber(ov.queue.dead_letters)} dead letters. `,
        ov.latency_ms.p50 === null ? 'No delivery latency yet.' : `Latency p50 ${ov.latency_ms.p50} ms, p95 ${ov.latency_ms.p95} ms, p99 ${ov.latency_ms.p99} ms.`),
    ] : h('p', {class: 'empty'}, 'No delivery data yet.'));
  clear(view,
    h('p', {class: 'crumbs'}, h('a', {href: '#/destinations'}, 'Destinations'), ' / ', dest.name),
    h('h1', null, `Destination ${dest.name}`),
    h('p', {class: 'meta'}, `${dest.type} · id ${dest.id} · `, dest.enabled ? 'enabled' : 'disabled'),
    delivery,
    connectionsCard(ctx, dest, sources, connections, reload),
    await deadLettersCard(ctx, dest),
    canWrite ? replayCard(ctx, dest, sources) : null,
    canWrite ? destinationForm(ctx, types, sources, dest) : h('section', {class: 'card'}, h('h2', null, 'Settings'), prettyJson(dest.settings)));
}

export async function renderDestinations(view, ctx) {
  if (ctx.args[0] === 'new') {
    const [types, sources] = await Promise.all([loadTypes(ctx.signal), data('/api/v1/sources', {signal: ctx.signal})]);
    clear(view,
      h('p', {class: 'crumbs'}, h('a', {href: '#/destinations'}, 'Destinations'), ' / new'),
      h('h1', null, 'Add a destination'),
      destinationForm(ctx, types, sources, null));
    return;
  }
  if (ctx.args[0]) {
    await renderDestination(view, ctx, ctx.args[0]);
    return;
  }
  const [dests, overview] = await Promise.all([
    data('/api/v1/destinations', {signal: ctx.signal}),
    api('/api/v1/overview?window=86400&bucket=3600', {signal: ctx.signal}).catch(() => ({destinations: []})),
  ]);
  const ov = Object.fromEntries((overview.destinations || []).map(d => [d.id, d]));
  clear(view,
    h('div', {class: 'section-head'}, h('h1', null, 'Destinations'),
      ctx.me.role !== 'viewer' ? h('a', {class: 'button primary', href: '#/destinations/new'}, 'Add destination') : null),
    table('!Destinations', [
      {label: 'Name', value: d => h('a', {href: `#/destinations/${enc(d.id)}`}, d.name)},
      {label: 'Type', value: d => d.type},
      {label: 'Health', value: d => (d.enabled ? healthBadge(ov[d.id]?.health) : h('span', {class: 'badge muted'}, 'disabled'))},
      {label: 'Delivered (24 h)', value: d => fmtNumber(ov[d.id]?.totals?.delivered ?? 0)},
      {label: 'Dead letters', value: d => fmtNumber(ov[d.id]?.queue?.dead_letters ?? 0)},
    ], dests, {empty: 'No destinations yet.'}));
}
