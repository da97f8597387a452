// Shows `veilgrid flash` progress: on a terminal, one line per meter with a bar, redrawn in place;
// otherwise (a log, a pipe, CI) a plain line whenever a meter changes stage, and every quarter of
// its upload.
import type { FlashEvent, FlashStage } from './flash-meters.ts';

const BAR_WIDTH = 24;

export interface ProgressOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export class FlashProgressDisplay {
  private readonly states = new Map<string, FlashEvent>();
  private readonly portWidth: number;
  private linesDrawn = 0;
  private lastDrawn = '';
  /** Last plain-mode report per port: stage and quarter of the upload. */
  private readonly lastPlain = new Map<string, string>();

  constructor(
    ports: string[],
    private readonly out: ProgressOutput,
  ) {
    this.portWidth = Math.max(...ports.map((p) => p.length));
  }

  update(event: FlashEvent): void {
    // a failed meter's bar stays where its upload stopped
    const before = this.states.get(event.port);
    this.states.set(event.port, event.stage === 'failed' && before ? { ...event, sentBytes: before.sentBytes } : event);
    if (this.out.isTTY) this.redraw();
    else this.printPlain(event);
  }

  private redraw(): void {
    const text = [...this.states.values()].map((e) => this.line(e)).join('\n');
    if (text === this.lastDrawn) return; // most progress events move no bar by a whole percent
    this.lastDrawn = text;
    const up = this.linesDrawn > 0 ? `\x1b[${this.linesDrawn}A` : '';
    const lines = text.split('\n').map((line) => `\r\x1b[2K${line}`);
    this.out.write(up + lines.join('\n') + '\n');
    this.linesDrawn = lines.length;
  }

  private line(e: FlashEvent): string {
    const fraction = e.stage === 'done' ? 1 : e.totalBytes > 0 ? e.sentBytes / e.totalBytes : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = '#'.repeat(filled) + '.'.repeat(BAR_WIDTH - filled);
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    return `${e.port.padEnd(this.portWidth)}  [${bar}] ${percent}  ${stageText(e.stage)}`;
  }

  private printPlain(e: FlashEvent): void {
    const quarter = e.stage === 'uploading' && e.totalBytes > 0 ? Math.floor((4 * e.sentBytes) / e.totalBytes) : 0;
    const key = `${e.stage}/${quarter}`;
    if (this.lastPlain.get(e.port) === key || e.stage === 'queued') return;
    this.lastPlain.set(e.port, key);
    const percent = e.stage === 'uploading' ? ` ${Math.floor((100 * e.sentBytes) / Math.max(1, e.totalBytes))}%` : '';
    this.out.write(`${e.port.padEnd(this.portWidth)}  ${stageText(e.stage)}${percent}\n`);
  }
}

function stageText(stage: FlashStage): string {
  switch (stage) {
    case 'queued':
      return 'waiting';
    case 'connecting':
      return 'connecting';
    case 'uploading':
      return 'uploading';
    case 'rebooting':
      return 'rebooting into the new firmware';
    case 'verifying':
      return 'asking the meter which build it runs';
    case 'done':
      return 'done';
    case 'failed':
      return 'FAILED';
  }
}
