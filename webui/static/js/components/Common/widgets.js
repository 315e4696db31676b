// Small shared widgets: metric cards, panels, state badges, table builders.
import { h, setText } from '../../utils/dom.js';

/** Metric is a labelled value card; set(value, level) with level ok|warn|err. */
export class Metric {
  constructor(label, id) {
    this.value = h('div', { class: 'value', text: '–' });
    this.sub = h('div', { class: 'sub' });
    this.el = h('div', { class: 'metric', id }, h('div', { class: 'label', text: label }), this.value, this.sub);
  }

  set(value, sub = '', level = '') {
    setText(this.value, value);
    setText(this.sub, sub);
    this.el.dataset.level = level;
  }
}

export function panel(title, id, ...body) {
  return h('section', { class: 'panel', id }, h('h2', { text: title }), ...body);
}

/** badge: a state as icon and word (never colour alone). */
export function badge(level, word) {
  const icon = { ok: '✔', warn: '⚠', err: '✖', off: '○' }[level] || '•';
  return h('span', { class: 'badge ' + level }, h('span', { 'aria-hidden': 'true', text: icon + ' ' }), word);
}

/** table(headers) → {table, tbody}; headers are strings or {label, cls}. */
export function table(headers, id) {
  const tbody = h('tbody');
  const tr = h('tr');
  for (const c of headers) tr.append(h('th', { scope: 'col', class: c.cls, text: c.label ?? c }));
  return { table: h('table', { class: 'grid', id }, h('thead', null, tr), tbody), tbody };
}

export function setLevel(el, level) {
  el.dataset.level = level;
}

export { setText };
