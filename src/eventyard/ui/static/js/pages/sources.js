// Sources: the list, and per source its write key, install snippets and event volume.

import {api, data, enc} from '../api.js';
import {h, clear, copyButton, errorBox, field, table, notice} from '../dom.js';
import {stackedBars, widthFor} from '../charts.js';

export function snippets(writeKey, origin) {
  const host = new URL(origin).host;
  const protocol = new URL(origin).protocol.replace(':', '');
  const js = `import { AnalyticsBrowser } from '@segment/analytics-next'

// eventyard serves the settings analytics.js asks for (cdnURL), and they point
// apiHost at this server; the options below say the same explicitly.
export const analytics = AnalyticsBrowser.load(
  { writeKey: '${writeKey}', cdnURL: '${origin}' },
  { integrations: { 'Segment.io': { apiHost: '${host}/v1', protocol: '${protocol}' } } },
)

analytics.track('Order Completed', { revenue: 42 })`;
  const python = `# pip install segment-analytics-python
import segment.analytics as analytics

analytics.write_key = '${writeKey}'
analytics.host = '${origin}'

analytics.identify('user-1', {'email': 'ana@example.com'})
analytics.track('user-1', 'Order Completed', {'revenue': 42})
analytics.flush()`;
  const node = `// npm install @segment/analytics-node
import { Analytics } from '@segment/analytics-node'

const analytics = new Analytics({ writeKey: '${writeKey}', host: '${origin}' })

analytics.identify({ userId: 'user-1', traits: { email: 'ana@example.com' } })
analytics.track({ userId: 'user-1', event: 'Order Completed', properties: { revenue: 42 } })
await analytics.closeAndFlush()`;
  return [
    {id: 'js', label: 'analytics.js (browser)', code: js},
    {id: 'python', label: 'Python', code: python},
    {id: 'node', label: 'Node.js', code: node},
  ];
}

/** Accessible tabs (arrow keys move between tabs, as the ARIA pattern says). */
export function tabs(label, items) {
  const list = h('div', {role: 'tablist', 'aria-label': label, class: 'tabs'});
  const panels = [];
  const buttons = items.map((item, i) => {
    const tabId = `tab-${item.id}`;
    const panelId = `panel-${item.id}`;
    const btn = h('button', {type: 'button', role: 'tab', id: tabId, 'aria-controls': panelId,
      'aria-selected': String(i === 0), tabindex: i === 0 ? '0' : '-1'}, item.label);
    panels.push(h('div', {role: 'tabpanel', id: panelId, 'aria-labelledby': tabId, hidden: i !== 0, class: 'tabpanel'},
      item.content));
    return btn;
  });
  const select = (i) => {
    buttons.forEach((b, k) => {
      b.setAttribute('aria-selected', String(k === i));
      b.tabIndex = k === i ? 0 : -1;
      panels[k].hidden = k !== i;
    });
    buttons[i].focus();
  };
  buttons.forEach((b, i) => {
    b.addEventListener('click', () => select(i));
    b.addEventListener('keydown', (ev) => {
      const n = buttons.length;
      if (ev.key === 'ArrowRight') select((i + 1) % n);
      else if (ev.key === 'ArrowLeft') select((i + n - 1) % n);
      else if (ev.key === 'Home') select(0);
      else if (ev.key === 'End') select(n - 1);
      else return;
      ev.preventDefault();
    });
  });
  list.append(...buttons);
  return h('div', {class: 'tabset'}, list, panels);
}

function codeBlock(code, what) {
  return h('div', {class: 'code'}, copyButton(code, `Copy the ${what} snippet`), h('pre', {tabindex: 0}, h('code', null, code)));
}

async function renderVolume(box, source, hours, signal) {
  clear(box, h('p', {class: 'loading'}, 'Loading volume…'));
  try {
    const volume = await data(`/api/v1/sources/${enc(source.id)}/volume?hours=${hours}`, {signal});
    if (!volume.series || !volume.series.length) {
      clear(box, h('p', {class: 'empty'}, `No events in the last ${hours} hours.`));
      return;
    }
    const title = `Events per ${volume.bucketSeconds >= 86400 ? 'day' : 'hour'} by event name, last ${hours} hours`;
    clear(box, stackedBars(title, volume, {width: widthFor(box)}));
  } catch (err) {
    if (err.name !== 'AbortError') clear(box, errorBox(err));
  }
}

async function renderSource(view, source, ctx) {
  const origin = location.origin;
  const hoursSelect = h('select', null, [24, 72, 168].map(n => h('option', {value: n}, n === 168 ? '7 days' : `${n} hours`)));
  const volumeBox = h('div');
  hoursSelect.addEventListener('change', () => renderVolume(volumeBox, source, hoursSelect.value, ctx.signal));
  clear(view,
    h('p', {class: 'crumbs'}, h('a', {href: '#/sources'}, 'Sources'), ' / ', source.name),
    h('h1', null, `Source ${source.name}`),
    h('section', {class: 'card', 'aria-labelledby': 'wk-title'},
      h('h2', {id: 'wk-title'}, 'Write key'),
      h('div', {class: 'keyline'}, h('code', {class: 'writekey'}, source.writeKey), copyButton(source.writeKey, 'Copy the write key')),
      h('p', {class: 'meta'}, `id ${source.id} · workspace ${source.workspaceId} · `, source.enabled ? 'enabled' : 'disabled'),
      h('p', null, h('a', {href: `#/live?source=${enc(source.id)}`}, 'Watch its events in the live debugger'), ' · ',
        h('a', {href: `#/catalog?source=${enc(source.id)}`}, 'Its schema catalog'))),
    h('section', {class: 'card', 'aria-labelledby': 'install-title'},
      h('h2', {id: 'install-title'}, 'Install'),
      h('p', null, `Send events to this server (${origin}) with the write key above.`),
      tabs('Install snippets', snippets(source.writeKey, origin).map(s => ({...s, content: codeBlock(s.code, s.label)})))),
    h('section', {class: 'card', 'aria-labelledby': 'volume-title'},
      h('div', {class: 'section-head'}, h('h2', {id: 'volume-title'}, 'Event volume'), field('Period', hoursSelect)),
      volumeBox));
  await renderVolume(volumeBox, source, hoursSelect.value, ctx.signal);
}

function createForm(ctx, workspaces, onCreated) {
  const name = h('input', {type: 'text', name: 'name', required: true, autocomplete: 'off'});
  const status = h('div', {class: 'form-status'});
  const parts = [h('h2', null, 'New source'), field('Name', name, '1-64 letters, digits, dot, dash and underscore.')];
  let wsSelect = null;
  if (!ctx.me.workspaceId && workspaces.length > 1) {
    wsSelect = h('select', {name: 'workspace'}, workspaces.map(w => h('option', {value: w.id}, w.name)));
    parts.push(field('Workspace', wsSelect));
  }
  const form = h('form', {class: 'card inline-form'}, parts, status, h('button', {type: 'submit', class: 'primary'}, 'Create source'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    const body = {name: name.value.trim()};
    if (wsSelect) body.workspace = wsSelect.value;
    try {
      const created = (await api('/api/v1/sources', {method: 'POST', body})).data;
      onCreated(created);
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  return form;
}

export async function renderSources(view, ctx) {
  const [sources, workspaces] = await Promise.all([
    data('/api/v1/sources', {signal: ctx.signal}),
    data('/api/v1/workspaces', {signal: ctx.signal}).catch(() => []),
  ]);
  if (ctx.args[0]) {
    const source = sources.find(s => s.id === ctx.args[0] || s.name === ctx.args[0]);
    if (!source) {
      clear(view, h('h1', null, 'Source'), notice('error', `No source with id or name ${ctx.args[0]}.`));
      return;
    }
    await renderSource(view, source, ctx);
    return;
  }
  const wsName = Object.fromEntries(workspaces.map(w => [w.id, w.name]));
  const canWrite = ctx.me.role !== 'viewer';
  clear(view,
    h('h1', null, 'Sources'),
    table('!Sources', [
      {label: 'Name', value: s => h('a', {href: `#/sources/${enc(s.id)}`}, s.name)},
      {label: 'Workspace', value: s => wsName[s.workspaceId] || s.workspaceId},
      {label: 'Write key', value: s => h('code', null, s.writeKey)},
      {label: 'Status', value: s => h('span', {class: `badge ${s.enabled ? 'ok' : 'muted'}`}, s.enabled ? 'enabled' : 'disabled')},
    ], sources, {empty: 'No sources yet.'}),
    canWrite ? createForm(ctx, workspaces, created => ctx.go(`#/sources/${enc(created.id)}`)) : null);
}
