/**
 * Line charts with uPlot: one per metric family, x = model version (or run) id. A chart with fewer
 * than one point says so in words instead of drawing an empty frame.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from '../shared/dom.ts';

interface SeriesSpec {
  label: string;
  color: string;
  /** Own y scale (e.g. KL beside reward). */
  scale?: string;
}

export class LineChart {
  readonly el: HTMLElement;
  private readonly plotEl: HTMLElement;
  private readonly emptyEl: HTMLElement;
  private plot: uPlot | null = null;

  constructor(
    readonly title: string,
    private readonly xLabel: string,
    private readonly series: SeriesSpec[],
    private readonly yLabel: string,
  ) {
    this.plotEl = h('div', { class: 'plot' });
    this.emptyEl = h('p', { class: 'muted empty-chart' }, 'No data yet.');
    this.el = h('figure', { class: 'chart', 'aria-label': title }, h('figcaption', {}, title), this.plotEl, this.emptyEl);
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(this.plotEl);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(this.plotEl.clientWidth, 240), height: 200 };
  }

  /** `xs` ascending; one array of y values (null: missing) per series. */
  setData(xs: number[], ys: (number | null)[][], { empty = 'No data yet.' } = {}): void {
    const hasData = xs.length > 0 && ys.some((col) => col.some((v) => v !== null));
    this.emptyEl.textContent = empty;
    this.emptyEl.hidden = hasData;
    this.plotEl.hidden = !hasData;
    if (!hasData) return;
    const data = [xs, ...ys] as uPlot.AlignedData;
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const scales: uPlot.Scales = { x: { time: false } };
    const axes: uPlot.Axis[] = [
      { label: this.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100], values: (_u, splits) => splits.map((v) => String(v)) },
      { label: this.yLabel, scale: this.series[0].scale ?? 'y' },
    ];
    const second = this.series.find((s) => s.scale && s.scale !== (this.series[0].scale ?? 'y'));
    if (second) axes.push({ label: second.label, scale: second.scale, side: 1, grid: { show: false } });
    this.plot = new uPlot(
      {
        ...this.size(),
        legend: { live: false },
        scales,
        axes,
        series: [
          { label: this.xLabel },
          ...this.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, scale: s.scale ?? 'y', spanGaps: true, points: { show: true, size: 6 } })),
        ],
      },
      data,
      this.plotEl,
    );
  }
}
