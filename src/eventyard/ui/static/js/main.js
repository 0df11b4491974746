// The console's shell: sign-in, navigation and the hash router (#/section/arg?query).

import {api, session, whenUnauthorized} from './api.js';
import {h, clear, errorBox, field} from './dom.js';
import {renderSources} from './pages/sources.js';
import {renderLive} from './pages/live.js';
import {renderDestinations} from './pages/destinations.js';
import {renderCatalog} from './pages/catalog.js';
import {renderProfiles} from './pages/profiles.js';
import {renderPrivacy} from './pages/privacy.js';

const PAGES = {
  sources: {title: 'Sources', render: renderSources},
  live: {title: 'Live debugger', render: renderLive},
  destinations: {title: 'Destinations', render: renderDestinations},
  catalog: {title: 'Schema catalog', render: renderCatalog},
  profiles: {title: 'Profiles', render: renderProfiles},
  privacy: {title: 'Privacy', render: renderPrivacy},
};

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const navToggle = document.getElementById('nav-toggle');
const whoami = document.getElementById('whoami');
const announcer = document.getElementById('announcer');

let me = null;
let current = null; // AbortController of the page on screen

export function announce(text) {
  announcer.textContent = '';
  setTimeout(() => { announcer.textContent = text; }, 50);
}

/** Parse "#/section/a/b?x=1" -> {section, args: [a, b], query: URLSearchParams}. */
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, qs = ''] = raw.split('?', 2);
  const [section = '', ...args] = path.split('/').filter(Boolean).map(decodeURIComponent);
  return {section, args, query: new URLSearchParams(qs)};
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function setNavOpen(open) {
  navToggle.setAttribute('aria-expanded', String(open));
  nav.classList.toggle('open', open);
}

function showSignIn(error) {
  current?.abort();
  me = null;
  nav.hidden = true;
  navToggle.hidden = true;
  whoami.hidden = true;
  document.title = 'Sign in · eventyard console';
  const input = h('input', {type: 'password', name: 'token', autocomplete: 'current-password', required: true, spellcheck: 'false'});
  const status = h('div', {class: 'form-status'});
  const form = h('form', {class: 'card signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to eventyard'),
    h('p', null, 'Paste an admin token (owner, editor or viewer). ',
      'The first start of `eventyard serve` prints one; `eventyard token create` makes more. ',
      'The token is kept in this tab only and forgotten when the tab closes.'),
    field('Admin token', input),
    status,
    h('button', {type: 'submit', class: 'primary'}, 'Sign in'));
  if (error) status.append(errorBox(error));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    clear(status);
    try {
      const body = await api('/api/v1/me', {token});
      session.set(token);
      me = body.data;
      startConsole();
    } catch (err) {
      status.append(errorBox(err));
      input.focus();
    }
  });
  clear(view, form);
  input.focus();
}

async function workspaceName(id) {
  try {
    const found = (await api('/api/v1/workspaces')).data.find(w => w.id === id);
    return found ? found.name : id;
  } catch {
    return id;
  }
}

async function startConsole() {
  nav.hidden = false;
  navToggle.hidden = false;
  whoami.hidden = false;
  const scope = me.workspaceId ? `workspace ${await workspaceName(me.workspaceId)}` : 'all workspaces';
  document.getElementById('whoami-text').textContent = `${me.name} · ${me.role} · ${scope}`;
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/sources';
  else route();
}

async function route() {
  if (!me) return;
  const {section, args, query} = parseHash(location.hash);
  const page = PAGES[section];
  if (!page) {
    location.hash = '#/sources';
    return;
  }
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  setNavOpen(false);
  document.title = `${page.title} · eventyard console`;
  clear(view, h('p', {class: 'loading'}, 'Loading…'));
  try {
    await page.render(view, {args, query, me, signal, go, announce});
  } catch (err) {
    if (err.name === 'AbortError' || signal.aborted) return;
    clear(view, h('h1', null, page.title), errorBox(err));
  }
  if (!signal.aborted) {
    // move focus to the page for keyboard and screen-reader users, unless a control has it
    if (!view.contains(document.activeElement)) view.focus({preventScroll: true});
  }
}

navToggle.addEventListener('click', () => {
  const open = navToggle.getAttribute('aria-expanded') !== 'true';
  setNavOpen(open);
  if (open) nav.querySelector('a').focus();
});
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && nav.classList.contains('open')) {
    setNavOpen(false);
    navToggle.focus();
  }
});
document.getElementById('sign-out').addEventListener('click', () => {
  session.clear();
  showSignIn();
  announce('Signed out');
});
whenUnauthorized((err) => {
  session.clear();
  showSignIn(err);
});
window.addEventListener('hashchange', route);
// the skip link must not change the hash: the hash is the router's
document.querySelector('.skip-link').addEventListener('click', (ev) => {
  ev.preventDefault();
  view.focus();
});

async function boot() {
  if (!session.token) {
    showSignIn();
    return;
  }
  try {
    me = (await api('/api/v1/me')).data;
    startConsole();
  } catch (err) {
    if (err.status !== 401) showSignIn(err);
  }
}

boot();
