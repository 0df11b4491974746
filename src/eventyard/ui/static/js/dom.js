// Small DOM helpers. Everything the console shows is built with h(): text always goes
// through textContent, never innerHTML, so data from events cannot become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name in el && !(el instanceof SVGElement) && typeof value !== 'string') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

/** h('button', {class: 'primary', onclick}, 'Save') */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const {value, ...rest} = attrs || {};
  setAttrs(el, rest);
  append(el, children);
  // after the children: a <select>'s value needs its options, a <textarea>'s is a property
  if (value !== undefined && value !== null) el.value = String(value);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A unique element id (for label/aria wiring). */
export function newId(prefix = 'el') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: label + control (+ hint), wired with for/aria-describedby. */
export function field(labelText, control, hintText) {
  if (!control.id) control.id = newId('f');
  const label = h('label', {for: control.id}, labelText);
  let hint = null;
  if (hintText) {
    hint = h('p', {class: 'hint', id: newId('hint')}, hintText);
    control.setAttribute('aria-describedby', hint.id);
  }
  if (control.type === 'checkbox') {
    return h('div', {class: 'field check'}, h('div', {class: 'check-row'}, control, label), hint);
  }
  return h('div', {class: 'field'}, label, control, hint);
}

/** Append children to an element, skipping null/false (Element.append would print them). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function fmtNumber(n) {
  return typeof n === 'number' ? n.toLocaleString() : '—';
}

/** ISO-8601 string or unix seconds -> local date and time. */
export function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '—';
  const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

/** Pretty JSON with token classes for colouring (built as nodes, never as markup). */
export function prettyJson(value) {
  const text = JSON.stringify(value, null, 2) ?? 'undefined';
  const pre = h('pre', {class: 'json', tabindex: 0});
  const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  for (const m of text.matchAll(token)) {
    pre.append(text.slice(last, m.index));
    if (m[1] && m[2]) {
      pre.append(h('span', {class: 'j-key'}, m[1]), m[2]);
    } else if (m[1]) {
      pre.append(h('span', {class: 'j-str'}, m[1]));
    } else if (m[3]) {
      pre.append(h('span', {class: 'j-lit'}, m[3]));
    } else {
      pre.append(h('span', {class: 'j-num'}, m[4]));
    }
    last = m.index + m[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

/** A message box for errors and notices; role=alert for errors so screen readers hear it. */
export function notice(kind, text) {
  return h('div', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text);
}

export function errorBox(err) {
  const code = err && err.code ? `${err.code}: ` : '';
  return notice('error', `${code}${err && err.message ? err.message : String(err)}`);
}

/** A button that copies text to the clipboard and says so. */
export function copyButton(text, label) {
  const btn = h('button', {type: 'button', class: 'small', 'aria-label': label}, 'Copy');
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      btn.textContent = 'Select and copy';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
  });
  return btn;
}

/** A simple table: columns [{label, value: row => node|string}]. */
export function table(caption, columns, rows, {empty = 'Nothing yet.'} = {}) {
  if (!rows.length) return h('p', {class: 'empty'}, empty);
  return h('div', {class: 'table-wrap'},
    h('table', null,
      h('caption', {class: caption.startsWith('!') ? 'sr-only' : ''}, caption.replace(/^!/, '')),
      h('thead', null, h('tr', null, columns.map(c => h('th', {scope: 'col'}, c.label)))),
      h('tbody', null, rows.map(row => h('tr', null, columns.map(c => h('td', {'data-label': c.label}, h('div', {class: 'cell'}, c.value(row)))))))));
}
