// Profiles explorer: find a profile by any identifier (type:value) or its id; traits,
// identifiers, merge history with the rule that merged, the event timeline; split a merge.

import {api, data, enc} from '../api.js';
import {h, clear, errorBox, field, fmtTime, notice, prettyJson, table} from '../dom.js';

function eventLine(e) {
  const what = e.type === 'track' ? e.event : (e.name ? `${e.type} ${e.name}` : e.type);
  return h('li', null,
    h('details', null,
      h('summary', null,
        h('time', {datetime: e.timestamp}, fmtTime(e.timestamp)), ' ',
        h('span', {class: 'badge info'}, e.type), ' ', h('strong', null, what)),
      prettyJson(e)));
}

function mergeRow(ctx, ref, wsParam, onSplit) {
  return (m) => {
    if (m.undone_at) return h('span', {class: 'badge muted', title: m.undone_reason || ''}, `split ${fmtTime(m.undone_at)}`);
    if (ctx.me.role === 'viewer' || m.id === null || m.id === undefined) return h('span', {class: 'badge ok'}, 'active');
    const btn = h('button', {type: 'button', class: 'small', 'aria-label': `Split merge ${m.id}`}, 'Split');
    btn.addEventListener('click', async () => {
      if (!window.confirm(`Split merge ${m.id}? The profiles are separated again and its events re-attributed.`)) return;
      btn.disabled = true;
      try {
        const result = await api(`/api/v1/profiles/${enc(ref)}/split${wsParam}`, {method: 'POST', body: {merge: m.id}});
        onSplit(result);
      } catch (err) {
        btn.disabled = false;
        btn.after(errorBox(err));
      }
    });
    return btn;
  };
}

async function showProfile(box, ctx, ref, wsParam, sourceName) {
  clear(box, h('p', {class: 'loading'}, `Looking up ${ref}…`));
  let profile;
  let why;
  try {
    [profile, why] = await Promise.all([
      api(`/api/v1/profiles/${enc(ref)}${wsParam}${wsParam ? '&' : '?'}events=50`, {signal: ctx.signal}),
      api(`/api/v1/profiles/${enc(ref)}/explain${wsParam}`, {signal: ctx.signal}),
    ]);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    clear(box, errorBox(err));
    return;
  }
  const reload = (result) => {
    ctx.announce('Merge split');
    showProfile(box, ctx, ref, wsParam, sourceName).then(() => {
      const parts = (result.profiles || []).map(p => `${p.profile_id} (${p.status}, ${p.identifiers.length} identifiers, ${p.events} events)`);
      box.prepend(notice('ok', `Split: ${parts.join('; ')}.`));
    });
  };
  const viaMerge = Object.fromEntries((why.identifiers || []).map(i => [i.identifier, i]));
  const meta = profile.metadata || {};
  clear(box,
    h('section', {class: 'card', 'aria-labelledby': 'prof-title'},
      h('h2', {id: 'prof-title'}, `Profile ${profile.profile_id}`),
      h('p', {class: 'meta'}, `${profile.collection} · workspace ${profile.workspace} · first seen ${fmtTime(meta.first_seen_at)} · last seen ${fmtTime(meta.last_seen_at)} · ${profile.merges ?? 0} merge(s)`),
      h('h3', null, 'Traits'),
      table('!Traits', [
        {label: 'Trait', value: ([k]) => h('code', null, k)},
        {label: 'Value', value: ([, v]) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v))},
      ], Object.entries(profile.traits || {}), {empty: 'No traits.'})),
    h('section', {class: 'card', 'aria-labelledby': 'ids-title'},
      h('h2', {id: 'ids-title'}, 'Identifiers'),
      table('!Identifiers', [
        {label: 'Identifier', value: i => h('code', null, `${i.type}:${i.id}`)},
        {label: 'Source', value: i => (i.source_id ? sourceName(i.source_id) : '—')},
        {label: 'Added', value: i => fmtTime(i.created_at)},
        {label: 'How', value: i => {
          const w = viaMerge[`${i.type}:${i.id}`];
          return w && w.via_merge ? `via merge ${w.via_merge}` : 'seen on this profile';
        }},
      ], profile.identifiers || [], {empty: 'No identifiers.'})),
    h('section', {class: 'card', 'aria-labelledby': 'merges-title'},
      h('h2', {id: 'merges-title'}, 'Merge history'),
      table('!Merges', [
        {label: 'Merge', value: m => String(m.id)},
        {label: 'When', value: m => fmtTime(m.at)},
        {label: 'Merged', value: m => `${m.from} into ${m.into}`},
        {label: 'Reason', value: m => [h('code', null, m.rule), m.detail ? ` ${m.detail}` : '',
          m.message_id ? h('span', {class: 'hint block'}, `event ${m.message_id}`) : null]},
        {label: 'Identifiers', value: m => (Array.isArray(m.identifiers) ? m.identifiers : Object.keys(m.identifiers || {})).join(', ')},
        {label: 'Status', value: mergeRow(ctx, ref, wsParam, reload)},
      ], why.merges || [], {empty: 'This profile was never merged.'}),
      (why.refused || []).length ? [
        h('h3', null, 'Identifiers the rules refused'),
        table('!Refused identifiers', [
          {label: 'Identifier', value: r => h('code', null, r.identifier)},
          {label: 'Rule', value: r => h('code', null, r.rule)},
          {label: 'Why', value: r => r.detail || ''},
          {label: 'Times', value: r => String(r.count)},
          {label: 'Last', value: r => fmtTime(r.last_at)},
        ], why.refused),
      ] : null),
    h('section', {class: 'card', 'aria-labelledby': 'tl-title'},
      h('h2', {id: 'tl-title'}, 'Event timeline'),
      (profile.events || []).length ? h('ol', {class: 'timeline'}, profile.events.map(eventLine)) : h('p', {class: 'empty'}, 'No events stored for this profile.')));
}

export async function renderProfiles(view, ctx) {
  const [workspaces, sources] = await Promise.all([
    data('/api/v1/workspaces', {signal: ctx.signal}),
    data('/api/v1/sources', {signal: ctx.signal}),
  ]);
  const names = Object.fromEntries(sources.map(s => [s.id, s.name]));
  const sourceName = id => names[id] || id;
  const ref = ctx.query.get('ref') || '';
  const input = h('input', {type: 'search', name: 'ref', required: true, value: ref, placeholder: 'email:ana@example.com',
    autocomplete: 'off', spellcheck: 'false'});
  let wsSelect = null;
  if (!ctx.me.workspaceId && workspaces.length > 1) {
    wsSelect = h('select', {name: 'workspace'}, workspaces.map(w => h('option', {value: w.id}, w.name)));
    wsSelect.value = ctx.query.get('workspace') || workspaces[0].id;
  }
  const result = h('div', {class: 'profile'});
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'card search-form', role: 'search', 'aria-label': 'Find a profile'},
    field('Identifier or profile id', input, 'type:value, for example email:ana@example.com, user_id:42, anonymous_id:abc, group_id:acme (accounts), or prf_…'),
    wsSelect ? field('Workspace', wsSelect) : null,
    h('button', {type: 'submit', class: 'primary'}, 'Find profile'),
    status);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clear(status);
    const value = input.value.trim();
    if (!value.includes(':') && !value.startsWith('prf_')) {
      status.append(notice('error', 'Write the identifier as type:value, for example email:ana@example.com.'));
      input.focus();
      return;
    }
    const q = new URLSearchParams({ref: value});
    if (wsSelect) q.set('workspace', wsSelect.value);
    ctx.go(`#/profiles?${q}`);
  });
  clear(view, h('h1', null, 'Profiles'), form, result);
  if (ref) {
    const ws = ctx.me.workspaceId || (wsSelect ? wsSelect.value : null);
    await showProfile(result, ctx, ref, ws ? `?workspace=${enc(ws)}` : '', sourceName);
  }
}
