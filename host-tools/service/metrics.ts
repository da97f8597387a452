// Counters and gauges for a service (the DSO, the ledger bridge), rendered in the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): per metric one "# HELP" and one
// "# TYPE" line, then one sample line per label set. Small on purpose: no histograms, no timestamps.

/** The Content-Type a /metrics response carries. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Record<string, string>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** HELP text escapes backslash and newline; label values also escape the double quote. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

abstract class Metric {
  abstract readonly type: 'counter' | 'gauge';
  /** Samples keyed by their rendered label set ("" when unlabelled), kept in first-use order. */
  protected readonly samples = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name))
      throw new Error(`"${name}" is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__'))
        throw new Error(`"${label}" is not a valid Prometheus label name for ${name}`);
    }
    // An unlabelled metric shows 0 from the start, so a scrape never misses it.
    if (labelNames.length === 0) this.samples.set('', 0);
  }

  /** The label set rendered as it appears in a sample line: {a="1",b="2"} in labelNames order. */
  protected key(labels: Labels = {}): string {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || !this.labelNames.every((n) => n in labels)) {
      throw new Error(`${this.name} takes the labels {${this.labelNames.join(', ')}}, got {${given.join(', ')}}`);
    }
    if (this.labelNames.length === 0) return '';
    return '{' + this.labelNames.map((n) => `${n}="${escapeLabelValue(labels[n])}"`).join(',') + '}';
  }

  /** The current value for a label set (0 when never touched). */
  get(labels?: Labels): number {
    return this.samples.get(this.key(labels)) ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const [labels, value] of this.samples) lines.push(`${this.name}${labels} ${formatValue(value)}`);
    return lines.join('\n');
  }
}

/** A value that only goes up (resets only when the process restarts). */
export class Counter extends Metric {
  readonly type = 'counter';

  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new Error(`${this.name} is a counter: it can only increase (got ${by})`);
    const key = this.key(labels);
    this.samples.set(key, (this.samples.get(key) ?? 0) + by);
  }
}

/** A value that is set to what it currently is. */
export class Gauge extends Metric {
  readonly type = 'gauge';

  /** collect, when given, sets the gauge's values just before each render (e.g. from a database count). */
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly collect?: (gauge: Gauge) => void,
  ) {
    super(name, help, labelNames);
  }

  set(value: number, labels?: Labels): void {
    this.samples.set(this.key(labels), value);
  }

  override render(): string {
    this.collect?.(this);
    return super.render();
  }
}

/** A set of metrics rendered together for one /metrics endpoint. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = [], collect?: (gauge: Gauge) => void): Gauge {
    return this.add(new Gauge(name, help, labelNames, collect));
  }

  private add<M extends Metric>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is already registered`);
    this.metrics.set(metric.name, metric);
    return metric;
  }

  /** The exposition text: every metric in registration order, ending with a newline. */
  render(): string {
    return [...this.metrics.values()].map((m) => m.render()).join('\n') + '\n';
  }
}
