// Violations of a source's tracking plan (control/plan_api.py), shown under its catalog.

import {api, data, enc} from '../api.js';
import {h, errorBox, fmtNumber, fmtTime, table} from '../dom.js';

export async function violationsCard(ctx, source) {
  const card = h('section', {class: 'card', 'aria-labelledby': 'viol-title'}, h('h2', {id: 'viol-title'}, 'Tracking plan violations'));
  let attached;
  try {
    attached = await api(`/api/v1/sources/${enc(source.id)}/tracking-plan`, {signal: ctx.signal});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    if (err.status === 404 && err.code === 'not_found' && !err.message.startsWith('no endpoint')) {
      card.append(h('p', {class: 'empty'}, `${source.name} has no tracking plan. Attach one with `,
        h('code', null, `PUT /api/v1/sources/${source.name}/tracking-plan`), ' or in the workspace file.'));
    } else {
      card.append(errorBox(err));
    }
    return card;
  }
  card.append(h('p', {class: 'meta'}, `Plan ${attached.plan}`, attached.version ? ` (version ${attached.version})` : '', '.'));
  try {
    const rows = await data(`/api/v1/sources/${enc(source.id)}/violations`, {signal: ctx.signal});
    rows.sort((a, b) => (b.counts['24h'] || 0) - (a.counts['24h'] || 0));
    card.append(table('!Violations', [
      {label: 'Event', value: v => (v.eventName ? `${v.eventType} ${v.eventName}` : v.eventType)},
      {label: 'Field', value: v => (v.field ? h('code', null, v.field) : 'the event')},
      {label: 'Violation', value: v => h('span', {class: 'badge warn'}, v.violationType)},
      {label: 'What', value: v => v.description},
      {label: '1 h', value: v => fmtNumber(v.counts['1h'])},
      {label: '24 h', value: v => fmtNumber(v.counts['24h'])},
      {label: '7 d', value: v => fmtNumber(v.counts['7d'])},
      {label: 'Last seen', value: v => fmtTime(v.lastSeen)},
    ], rows, {empty: 'No violations in the last 7 days.'}));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    card.append(errorBox(err));
  }
  return card;
}
