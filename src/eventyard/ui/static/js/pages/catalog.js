// Schema catalog: per source, the events and properties seen, with types, volumes and
// first/last seen; and the violations of the source's tracking plan.

import {api, data, enc} from '../api.js';
import {h, clear, errorBox, field, fmtNumber, fmtTime, table} from '../dom.js';
import {violationsCard} from './violations.js';

function eventLabel(e) {
  return e.type === 'track' ? e.event : (e.event && e.event !== e.type ? `${e.type} ${e.event}` : e.type);
}

function eventCard(e) {
  return h('details', {class: 'catalog-event'},
    h('summary', null,
      h('span', {class: 'badge info'}, e.type),
      h('span', {class: 'catalog-name'}, eventLabel(e)),
      h('span', {class: 'meta'}, `${fmtNumber(e.count)} events · ${(e.properties || []).length} properties · last seen ${fmtTime(e.lastSeen)}`)),
    h('p', {class: 'meta'}, `First seen ${fmtTime(e.firstSeen)}, last seen ${fmtTime(e.lastSeen)}.`),
    table(`Properties of ${eventLabel(e)}`, [
      {label: 'Property', value: p => h('code', null, p.path)},
      {label: 'Types', value: p => h('span', {class: (p.types || []).length > 1 ? 'badge warn' : ''}, (p.types || []).join(' | '))},
      {label: 'Seen in', value: p => `${fmtNumber(p.count)} (${e.count ? Math.round((100 * p.count) / e.count) : 0}%)`},
      {label: 'First seen', value: p => fmtTime(p.firstSeen)},
      {label: 'Last seen', value: p => fmtTime(p.lastSeen)},
    ], e.properties || [], {empty: 'No properties.'}));
}

export async function renderCatalog(view, ctx) {
  const sources = await data('/api/v1/sources', {signal: ctx.signal});
  if (!sources.length) {
    clear(view, h('h1', null, 'Schema catalog'), h('p', {class: 'empty'}, 'No sources yet.'));
    return;
  }
  const wanted = ctx.query.get('source');
  const source = sources.find(s => s.id === wanted || s.name === wanted) || sources[0];
  const pick = h('select', {name: 'source'}, sources.map(s => h('option', {value: s.id}, s.name)));
  pick.value = source.id;
  pick.addEventListener('change', () => ctx.go(`#/catalog?source=${enc(pick.value)}&hours=${hours.value}`));
  const search = h('input', {type: 'search', name: 'q', placeholder: 'event or property name'});
  const hours = h('select', {name: 'hours'}, [1, 24, 168].map(n => h('option', {value: n}, n === 168 ? '7 days' : `${n} hour${n > 1 ? 's' : ''}`)));
  hours.value = ctx.query.get('hours') || '24';
  hours.addEventListener('change', () => ctx.go(`#/catalog?source=${enc(source.id)}&hours=${hours.value}`));
  const listBox = h('section', {class: 'card', 'aria-labelledby': 'cat-title'});
  const violationsBox = h('div');
  clear(view,
    h('h1', null, 'Schema catalog'),
    h('div', {class: 'filters'}, field('Source', pick), field('Period', hours), field('Find', search)),
    listBox,
    violationsBox);

  let events = [];
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const shown = !q ? events : events.filter(e => eventLabel(e).toLowerCase().includes(q)
      || (e.properties || []).some(p => p.path.toLowerCase().includes(q)));
    clear(listBox,
      h('h2', {id: 'cat-title'}, `Events of ${source.name}`),
      h('p', {class: 'meta', role: 'status'}, `${shown.length} of ${events.length} event kinds.`),
      shown.length ? shown.map(eventCard) : h('p', {class: 'empty'}, events.length ? 'Nothing matches.' : 'No events seen yet.'));
  };
  search.addEventListener('input', show);
  try {
    const body = await api(`/api/v1/catalog?source=${enc(source.id)}&hours=${enc(hours.value)}`, {signal: ctx.signal});
    events = body.data;
    events.sort((a, b) => (b.count || 0) - (a.count || 0));
    show();
    const span = body.hours ? `the last ${body.hours} hours` : 'the retained events';
    listBox.append(h('p', {class: 'hint'}, body.complete === false
      ? `Built from the newest events of ${span} only (the scan is bounded); older events are left out.`
      : `Built from the events of ${span} the log retains.`));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    clear(listBox, h('h2', {id: 'cat-title'}, `Events of ${source.name}`), errorBox(err));
  }
  clear(violationsBox, await violationsCard(ctx, source));
}
