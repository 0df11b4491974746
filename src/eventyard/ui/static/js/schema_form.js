// A settings form generated from a destination type's JSON Schema (msgspec's output:
// string, integer, number, boolean, enum, arrays, objects, `anyOf [T, null]`).
// Secret fields (writeOnly) are password inputs holding the redacted value; sending that
// value back unchanged keeps the stored secret.

import {h, field} from './dom.js';

function resolve(schema, root) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split('/').pop();
    return resolve((root.$defs || {})[name] || {}, root);
  }
  return schema || {};
}

/** The object schema of the settings (msgspec may wrap it in $ref/$defs). */
export function settingsBody(schema) {
  return resolve(schema, schema);
}

/** {kind, nullable, enum, items} of one property. */
export function kindOf(prop, root) {
  let p = resolve(prop, root);
  let nullable = false;
  if (Array.isArray(p.anyOf)) {
    const others = p.anyOf.map(x => resolve(x, root)).filter(x => x.type !== 'null');
    nullable = others.length < p.anyOf.length;
    p = {...others[0], ...Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'anyOf'))};
  }
  if (Array.isArray(p.enum)) return {kind: 'enum', nullable, values: p.enum, p};
  if (p.type === 'array') {
    const items = resolve(p.items, root);
    if (Array.isArray(items.enum)) return {kind: 'multi', nullable, values: items.enum, p};
    if (items.type === 'string') return {kind: 'lines', nullable, p};
    return {kind: 'json', nullable, p};
  }
  if (['string', 'integer', 'number', 'boolean'].includes(p.type)) return {kind: p.type, nullable, p};
  return {kind: 'json', nullable, p};
}

function hintOf(p, required, secret, editing) {
  const parts = [];
  if (p.description) parts.push(p.description);
  if (secret) parts.push(editing ? 'Secret: leave as is to keep the stored value.' : 'Secret: stored, never shown again in full.');
  if (!required && p.default !== undefined && p.default !== null && typeof p.default !== 'object') parts.push(`Default: ${p.default}.`);
  if (!required) parts.push('Optional.');
  return parts.join(' ');
}

function labelOf(name) {
  return name.replace(/_/g, ' ').replace(/^./, c => c.toUpperCase());
}

/**
 * Build the form fields. Returns {element, read()} where read() gives the settings object
 * or throws Error with a message naming the field.
 */
export function settingsFields(schema, values = {}, {editing = false} = {}) {
  const body = settingsBody(schema);
  const required = new Set(body.required || []);
  const readers = [];
  const fields = [];
  for (const [name, prop] of Object.entries(body.properties || {})) {
    const {kind, values: choices, p} = kindOf(prop, schema);
    const secret = Boolean(prop.writeOnly || p.writeOnly);
    const isRequired = required.has(name);
    const has = Object.prototype.hasOwnProperty.call(values, name);
    const current = has ? values[name] : p.default;
    const label = labelOf(name);
    const hint = hintOf(p, isRequired, secret, editing && has && current !== null && current !== '');
    let control;
    let read;
    if (kind === 'boolean') {
      control = h('input', {type: 'checkbox', name, checked: Boolean(current)});
      read = () => control.checked;
    } else if (kind === 'enum') {
      control = h('select', {name},
        isRequired ? null : h('option', {value: ''}, '(default)'),
        choices.map(v => h('option', {value: String(v)}, String(v))));
      control.value = current === null || current === undefined ? '' : String(current);
      read = () => (control.value === '' ? undefined : control.value);
    } else if (kind === 'multi') {
      const boxes = choices.map(v => h('input', {type: 'checkbox', value: String(v), checked: (current || []).includes(v)}));
      const fs = h('fieldset', {class: 'field multi'}, h('legend', null, label),
        boxes.map((b, i) => h('label', {class: 'check'}, b, ` ${choices[i]}`)), hint ? h('p', {class: 'hint'}, hint) : null);
      fields.push(fs);
      readers.push([name, () => boxes.filter(b => b.checked).map(b => b.value), isRequired]);
      continue;
    } else if (kind === 'integer' || kind === 'number') {
      control = h('input', {type: 'number', name, step: kind === 'integer' ? '1' : 'any', inputmode: kind === 'integer' ? 'numeric' : 'decimal',
        value: current === null || current === undefined ? '' : current});
      read = () => {
        if (control.value === '') return undefined;
        const n = Number(control.value);
        if (!Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n))) {
          throw new Error(`${label} must be ${kind === 'integer' ? 'a whole number' : 'a number'}`);
        }
        return n;
      };
    } else if (kind === 'lines') {
      control = h('textarea', {name, rows: 3, value: (current || []).join('\n')});
      read = () => {
        const lines = control.value.split('\n').map(x => x.trim()).filter(Boolean);
        return lines.length || isRequired ? lines : undefined;
      };
    } else if (kind === 'json') {
      const empty = current === undefined || current === null;
      control = h('textarea', {name, rows: 4, class: 'mono', spellcheck: 'false', value: empty ? '' : JSON.stringify(current, null, 2)});
      read = () => {
        if (!control.value.trim()) return undefined;
        try { return JSON.parse(control.value); } catch (err) { throw new Error(`${label} is not valid JSON: ${err.message}`); }
      };
    } else {
      control = h('input', {type: secret ? 'password' : 'text', name, autocomplete: secret ? 'new-password' : 'off', spellcheck: 'false',
        value: current === null || current === undefined ? '' : current});
      if (isRequired) control.required = true;
      read = () => (control.value === '' ? undefined : control.value);
    }
    let wrapped;
    if (secret && kind === 'string') {
      const show = h('button', {type: 'button', class: 'small', 'aria-pressed': 'false', 'aria-label': `Show ${label}`}, 'Show');
      show.addEventListener('click', () => {
        const hidden = control.type === 'password';
        control.type = hidden ? 'text' : 'password';
        show.setAttribute('aria-pressed', String(hidden));
        show.textContent = hidden ? 'Hide' : 'Show';
      });
      wrapped = field(isRequired ? `${label} (required)` : label, control, hint);
      const row = h('div', {class: 'with-button'});
      control.replaceWith(row);
      row.append(control, show);
    } else {
      wrapped = field(isRequired ? `${label} (required)` : label, control, hint);
    }
    fields.push(wrapped);
    readers.push([name, read, isRequired]);
  }
  return {
    element: h('div', {class: 'settings-fields'}, fields),
    read() {
      const out = {};
      for (const [name, read, isRequired] of readers) {
        const value = read();
        if (value === undefined) {
          if (isRequired) throw new Error(`${labelOf(name)} is required`);
          continue;
        }
        out[name] = value;
      }
      return out;
    },
  };
}
