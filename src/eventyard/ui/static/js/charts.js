// Charts drawn as inline SVG, with a data table beside each for screen readers and for
// anyone who wants the numbers. No chart library: bars and axes are a few rects and lines.

import {h, s, newId, fmtNumber} from './dom.js';

// Colour-blind-friendly palette (Okabe-Ito, darkened for contrast on white).
export const PALETTE = ['#0060a8', '#c85a00', '#008060', '#b8327a', '#6a4fb0', '#8a6d00', '#3f6f8f', '#a03030'];

function niceMax(value) {
  if (value <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * exp >= value) return step * exp;
  }
  return 10 * exp;
}

function figure(title, svg, legend, dataTable) {
  const captionId = newId('chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-labelledby', captionId);
  return h('figure', {class: 'chart'},
    h('figcaption', {id: captionId}, title),
    svg,
    legend,
    h('details', {class: 'chart-data'}, h('summary', null, 'Show the numbers'), dataTable));
}

function legendOf(names) {
  return h('ul', {class: 'legend', 'aria-label': 'Legend'},
    names.map((name, i) => h('li', null,
      h('span', {class: 'swatch', 'aria-hidden': 'true', dataset: {color: i % PALETTE.length}}),
      name)));
}

function paintSwatches(root) {
  for (const sw of root.querySelectorAll('.swatch')) sw.style.background = PALETTE[Number(sw.dataset.color)];
}

function timeLabel(unix, bucketSeconds) {
  const d = new Date(unix * 1000);
  if (bucketSeconds >= 86400) return d.toLocaleDateString(undefined, {month: 'short', day: 'numeric'});
  return d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'});
}

/** The width to draw a chart at to fill ``el`` (so its text is not scaled down on phones). */
export function widthFor(el) {
  const w = el && el.clientWidth ? el.clientWidth : 720;
  return Math.max(300, Math.min(960, Math.round(w)));
}

/**
 * Stacked bars over time: volume = {bucketSeconds, buckets: [unix...], series: [{event, counts}]}.
 */
export function stackedBars(title, volume, {width = 720} = {}) {
  const {buckets = [], series = [], bucketSeconds = 3600} = volume || {};
  const height = width < 500 ? 200 : 240;
  const pad = {left: 48, right: 8, top: 10, bottom: 28};
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const totals = buckets.map((_, i) => series.reduce((sum, sr) => sum + (sr.counts[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const slot = buckets.length ? plotW / buckets.length : plotW;
  const barW = Math.max(1, slot * 0.8);
  const svg = s('svg', {viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', preserveAspectRatio: 'xMidYMid meet'});
  for (let t = 0; t <= 4; t++) {
    const value = (max / 4) * t;
    const y = pad.top + plotH - (value / max) * plotH;
    svg.append(
      s('line', {x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'grid'}),
      s('text', {x: pad.left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick'}, fmtNumber(value)));
  }
  const labelEvery = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plotW / 80))));
  buckets.forEach((start, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let y = pad.top + plotH;
    series.forEach((sr, k) => {
      const n = sr.counts[i] || 0;
      if (!n) return;
      const bh = (n / max) * plotH;
      y -= bh;
      svg.append(s('rect', {x, y, width: barW, height: bh, fill: PALETTE[k % PALETTE.length]},
        s('title', null, `${sr.event}: ${fmtNumber(n)} at ${timeLabel(start, bucketSeconds)}`)));
    });
    if (i % labelEvery === 0) {
      svg.append(s('text', {x: x + barW / 2, y: height - 8, 'text-anchor': 'middle', class: 'tick'},
        timeLabel(start, bucketSeconds)));
    }
  });
  svg.append(s('line', {x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: 'axis'}));
  const dataTable = h('div', {class: 'table-wrap'}, h('table', null,
    h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Time'), series.map(sr => h('th', {scope: 'col'}, sr.event)))),
    h('tbody', null, buckets.map((start, i) => h('tr', null,
      h('th', {scope: 'row'}, new Date(start * 1000).toLocaleString()),
      series.map(sr => h('td', null, fmtNumber(sr.counts[i] || 0))))))));
  const fig = figure(title, svg, legendOf(series.map(sr => sr.event)), dataTable);
  paintSwatches(fig);
  return fig;
}

/**
 * Horizontal bars, one per step: rows = [{label, value, kind}] where kind picks the colour
 * (ok, warn, bad, muted). Used for the delivery funnel.
 */
export function funnel(title, rows, {width = 720} = {}) {
  const rowH = 30;
  const labelW = Math.min(220, Math.round(width * 0.45));
  const height = rows.length * rowH + 8;
  const max = Math.max(1, ...rows.map(r => r.value));
  const svg = s('svg', {viewBox: `0 0 ${width} ${height}`, class: 'chart-svg funnel'});
  rows.forEach((row, i) => {
    const y = 4 + i * rowH;
    const w = Math.max(row.value ? 2 : 0, (row.value / max) * (width - labelW - 60));
    svg.append(
      s('text', {x: labelW - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: `label ${row.indent ? 'indent' : ''}`}, row.label),
      s('rect', {x: labelW, y: y + 4, width: w, height: rowH - 10, class: `bar ${row.kind || 'ok'}`},
        s('title', null, `${row.label}: ${fmtNumber(row.value)}`)),
      s('text', {x: labelW + w + 6, y: y + rowH / 2 + 4, class: 'value'}, fmtNumber(row.value)));
  });
  const dataTable = h('div', {class: 'table-wrap'}, h('table', null,
    h('thead', null, h('tr', null, h('th', {scope: 'col'}, 'Step'), h('th', {scope: 'col'}, 'Events'))),
    h('tbody', null, rows.map(r => h('tr', null, h('th', {scope: 'row'}, r.label), h('td', null, fmtNumber(r.value)))))));
  return figure(title, svg, null, dataTable);
}
