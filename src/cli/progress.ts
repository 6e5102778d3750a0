/**
 * A progress bar on stderr: redrawn in place on a terminal, a line every tenth of the way (and at the
 * end) otherwise, so logs of unattended runs stay readable.
 */
export class ProgressBar {
  private lastDecile = -1;
  private readonly interactive: boolean;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly width = 30,
    /** How counts are shown: as they are, or as bytes (MiB). */
    private readonly unit: 'count' | 'bytes' = 'count',
  ) {
    this.interactive = Boolean(stream.isTTY);
  }

  update(done: number, total: number): void {
    const fraction = total === 0 ? 1 : Math.min(done / total, 1);
    const filled = Math.round(fraction * this.width);
    const shown = (value: number) => (this.unit === 'bytes' ? `${(value / 1048576).toFixed(1)}` : String(value));
    const line = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(this.width - filled)}] ${shown(done)}/${shown(total)}${this.unit === 'bytes' ? ' MiB' : ''}`;
    if (this.interactive) {
      this.stream.write(`\r${line}${done >= total ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile !== this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(`${line}\n`);
    }
  }
}
