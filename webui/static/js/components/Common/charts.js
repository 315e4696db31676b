// Chart.js (vendored UMD build, global Chart) with the matrix theme.
import { formatBits, formatRate, formatBytes, formatPercent } from '../../utils/format.js';

const GREEN = '#00ff41';
const CYAN = '#00bcd4';
const GRID = 'rgba(0, 255, 65, 0.12)';
const TEXT = '#7dff9a';

export const TICKS = { bits: formatBits, rate: (v) => formatRate(v), bytes: formatBytes, percent: (v) => formatPercent(v, 0), count: (v) => String(v) };

function rootSize() {
  return parseFloat(getComputedStyle(document.documentElement).fontSize) || 13;
}

/** lineChart: a time series chart of two series on a left and a right axis. */
export function lineChart(canvas, { left, right }) {
  const Chart = window.Chart;
  // Chart text follows the page's root size (which follows the viewport), so a 4K
  // wall display is as legible as a laptop; one font object, resized on resize.
  const rem = rootSize();
  const font = { family: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace', size: Math.round(rem * 0.82) };
  const ds = (s, color, axis) => ({
    label: s.label, data: [], yAxisID: axis, borderColor: color, backgroundColor: color + '22',
    borderWidth: Math.max(1.5, rem / 9), pointRadius: 0, tension: 0.2, fill: axis === 'y',
  });
  const axis = (s, position, grid) => ({
    position, beginAtZero: true, grid: { color: grid ? GRID : 'transparent' },
    ticks: { color: TEXT, font, maxTicksLimit: 5, callback: (v) => TICKS[s.unit](v) },
    title: { display: true, text: s.label, color: TEXT, font },
  });
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: [ds(left, GREEN, 'y'), ...(right ? [ds(right, CYAN, 'y1')] : [])] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, normalized: true, parsing: true,
      onResize: (chart) => {
        const size = Math.round(rootSize() * 0.82);
        if (size === font.size) return;
        font.size = size;
        const o = chart.options;
        for (const sc of Object.values(o.scales)) {
          sc.ticks.font = { ...font };
          if (sc.title) sc.title.font = { ...font };
        }
        o.plugins.legend.labels.font = { ...font };
        chart.data.datasets.forEach((d) => { d.borderWidth = Math.max(1.5, rootSize() / 9); });
        requestAnimationFrame(() => chart.update('none'));
      },
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { ticks: { color: TEXT, font, maxTicksLimit: 6, maxRotation: 0 }, grid: { color: GRID } },
        y: axis(left, 'left', true),
        ...(right ? { y1: axis(right, 'right', false) } : {}),
      },
      plugins: {
        legend: { labels: { color: TEXT, font, boxWidth: 12 } },
        tooltip: {
          callbacks: { label: (c) => `${c.dataset.label}: ${TICKS[(c.datasetIndex ? right : left).unit](c.parsed.y)}` },
        },
      },
    },
  });
}

/** setSeries replaces the chart's data from a Series and redraws without animation. */
export function setSeries(chart, series, labelOf) {
  chart.data.labels = series.points.map((p) => labelOf(p[0]));
  chart.data.datasets.forEach((d, i) => { d.data = series.column(i + 1); });
  chart.update('none');
}
