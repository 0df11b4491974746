// Privacy: regulations (deletion/suppression, Segment's Public API shape) with the status of
// every store they reach, suppressions, and the audit log.

import {api, enc} from '../api.js';
import {h, clear, errorBox, field, fmtTime, notice, prettyJson, table} from '../dom.js';

const REGULATION_TYPES = ['SUPPRESS_WITH_DELETE', 'DELETE_ONLY', 'SUPPRESS_ONLY', 'UNSUPPRESS', 'DELETE_INTERNAL', 'SUPPRESS_WITH_DELETE_INTERNAL'];
const SUBJECT_TYPES = ['USER_ID', 'ANONYMOUS_ID'];

function statusBadge(status) {
  const kind = {FINISHED: 'ok', FAILED: 'bad', PARTIAL_SUCCESS: 'warn', NOT_SUPPORTED: 'muted'}[status] || 'info';
  return h('span', {class: `badge ${kind}`}, status);
}

function storesOf(reg) {
  const stores = Object.entries(reg.stores || {});
  if (!stores.length) return '—';
  return h('ul', {class: 'plain'}, stores.map(([name, st]) => h('li', null,
    h('code', null, name), ' ', statusBadge(st.status),
    st.detail ? ` ${st.detail}` : '',
    Object.keys(st.removed || {}).length ? ` (removed ${Object.entries(st.removed).map(([k, n]) => `${n} ${k}`).join(', ')})` : '')));
}

function wsQuery(ctx, ws) {
  return !ctx.me.workspaceId && ws ? `workspace=${enc(ws)}&` : '';
}

async function regulationsCard(ctx, ws, reload) {
  const card = h('section', {class: 'card', 'aria-labelledby': 'reg-title'}, h('h2', {id: 'reg-title'}, 'Regulations'));
  let body;
  try {
    body = await api(`/api/v1/regulations?${wsQuery(ctx, ws)}pagination.count=100`, {signal: ctx.signal});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    card.append(errorBox(err));
    return card;
  }
  const regs = body.data.regulations || [];
  const canWrite = ctx.me.role !== 'viewer';
  card.append(table('!Regulations', [
    {label: 'Created', value: r => fmtTime(r.createdAt)},
    {label: 'Type', value: r => h('code', null, r.regulationType)},
    {label: 'Subjects', value: r => `${r.subjectType}: ${r.subjectIds.slice(0, 5).join(', ')}${r.subjectIds.length > 5 ? ` and ${r.subjectIds.length - 5} more` : ''}`},
    {label: 'Status', value: r => statusBadge(r.overallStatus)},
    {label: 'Stores', value: storesOf},
    {label: 'Finished', value: r => fmtTime(r.finishedAt)},
  ], regs, {empty: 'No regulations.'}));
  if (body.data.pagination?.next) card.append(h('p', {class: 'hint'}, `Showing 100 of ${body.data.pagination.totalEntries}.`));
  if (canWrite) card.append(regulationForm(ctx, ws, reload));
  return card;
}

function regulationForm(ctx, ws, reload) {
  const type = h('select', {name: 'regulationType'}, REGULATION_TYPES.map(t => h('option', {value: t}, t)));
  const subjectType = h('select', {name: 'subjectType'}, SUBJECT_TYPES.map(t => h('option', {value: t}, t)));
  const ids = h('textarea', {name: 'subjectIds', rows: 3, required: true, spellcheck: 'false'});
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'sub-form', 'aria-labelledby': 'newreg-title'},
    h('h3', {id: 'newreg-title'}, 'New regulation'),
    h('div', {class: 'row'}, field('Regulation type', type), field('Subject type', subjectType)),
    field('Subject ids', ids, 'One per line.'),
    h('button', {type: 'submit', class: 'primary'}, 'Create regulation'),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    const subjectIds = ids.value.split('\n').map(x => x.trim()).filter(Boolean);
    if (!subjectIds.length) {
      status.append(notice('error', 'Name at least one subject id.'));
      return;
    }
    try {
      const r = await api(`/api/v1/regulations?${wsQuery(ctx, ws)}`, {method: 'POST', body: {regulationType: type.value, subjectType: subjectType.value, subjectIds}});
      ctx.announce(`Regulation ${r.data.regulateId} created`);
      reload();
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  return form;
}

async function suppressionsCard(ctx, ws) {
  const card = h('section', {class: 'card', 'aria-labelledby': 'sup-title'}, h('h2', {id: 'sup-title'}, 'Suppressed subjects'));
  try {
    const body = await api(`/api/v1/suppressions?${wsQuery(ctx, ws)}pagination.count=200`, {signal: ctx.signal});
    card.append(table('!Suppressions', [
      {label: 'Subject', value: s => `${s.subjectType}: ${s.subjectId}`},
      {label: 'Regulation', value: s => h('code', null, s.regulationId)},
      {label: 'Since', value: s => fmtTime(s.createdAt)},
    ], body.data.suppressed || [], {empty: 'Nobody is suppressed: events of every subject are accepted.'}));
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    card.append(errorBox(err));
  }
  return card;
}

/** The audit API pages oldest first; the console reads up to this many and shows the newest first. */
const AUDIT_MAX = 5000;
const AUDIT_PAGE = 100;

function auditCard(ctx) {
  const card = h('section', {class: 'card', 'aria-labelledby': 'audit-title'});
  const action = h('input', {type: 'search', name: 'action', placeholder: 'e.g. profile. or destination.update', spellcheck: 'false'});
  const actor = h('input', {type: 'search', name: 'actor', spellcheck: 'false'});
  const since = h('select', {name: 'since'}, ['1h', '24h', '7d', '30d'].map(v => h('option', {value: v}, `last ${v}`)));
  since.value = '24h';
  const results = h('div');
  const summary = h('p', {class: 'meta', role: 'status'});
  const more = h('button', {type: 'button', hidden: true}, 'Show older entries');
  let entries = [];
  let shown = AUDIT_PAGE;

  function render() {
    const rows = entries.slice(0, shown);
    more.hidden = entries.length <= shown;
    clear(results, table('!Audit log, newest first', [
      {label: 'When', value: e => fmtTime(e.at)},
      {label: 'Who', value: e => e.actor},
      {label: 'Action', value: e => h('code', null, e.action)},
      {label: 'Target', value: e => e.target},
      {label: 'From', value: e => e.origin},
      {label: 'Detail', value: e => (Object.keys(e.detail || {}).length ? h('details', null, h('summary', null, 'detail'), prettyJson(e.detail)) : '')},
    ], rows, {empty: 'No entries match.'}));
  }

  async function load() {
    const q = new URLSearchParams({limit: '1000', since: since.value});
    if (action.value.trim()) q.set('action', action.value.trim());
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    const found = [];
    let cut = false;
    try {
      for (let after = 0; ;) {
        if (after) q.set('after', after);
        const body = await api(`/api/v1/audit?${q}`, {signal: ctx.signal});
        found.push(...body.data);
        if (!body.next) break;
        if (found.length >= AUDIT_MAX) {
          cut = true;
          break;
        }
        after = body.next;
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      more.hidden = true;
      clear(summary);
      clear(results, errorBox(err));
      return;
    }
    entries = found.reverse();
    shown = AUDIT_PAGE;
    summary.textContent = cut
      ? `The ${found.length} oldest entries of the period were read; narrow the period or filter to see the newest.`
      : `${found.length} entries, newest first.`;
    render();
  }
  const form = h('form', {class: 'filters', 'aria-label': 'Filter the audit log'},
    field('Action starts with', action), field('Actor', actor), field('Period', since), h('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load();
  });
  more.addEventListener('click', () => {
    shown += AUDIT_PAGE;
    render();
  });
  card.append(h('h2', {id: 'audit-title'}, 'Audit log'),
    h('p', {class: 'hint'}, 'Who changed what, and who read personal data (the console\'s own reads included); needs an owner token.'),
    form, summary, results, more);
  load();
  return card;
}

export async function renderPrivacy(view, ctx) {
  const workspaces = (await api('/api/v1/workspaces', {signal: ctx.signal})).data;
  let wsSelect = null;
  const ws = ctx.me.workspaceId || ctx.query.get('workspace') || (workspaces[0] && workspaces[0].id);
  if (!ctx.me.workspaceId && workspaces.length > 1) {
    wsSelect = h('select', {name: 'workspace'}, workspaces.map(w => h('option', {value: w.id}, w.name)));
    wsSelect.value = ws;
    wsSelect.addEventListener('change', () => ctx.go(`#/privacy?workspace=${enc(wsSelect.value)}`));
  }
  const reload = () => renderPrivacy(view, ctx).catch(err => view.append(errorBox(err)));
  const [regs, sups] = await Promise.all([regulationsCard(ctx, ws, reload), suppressionsCard(ctx, ws)]);
  clear(view, h('h1', null, 'Privacy'), wsSelect ? h('div', {class: 'filters'}, field('Workspace', wsSelect)) : null, regs, sups, auditCard(ctx));
}
