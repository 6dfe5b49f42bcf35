// Splits a byte stream into lines of bounded length, so a peer that never sends a newline cannot
// make us buffer without limit (readline holds a whole line first): at most one line's limit and
// one chunk are held. Longer lines are cut and marked with "…"; the rest of such a line is dropped.
// Used for every stream we log line by line: hook, daemon and ssh stderr, plugins' stdout.
import { StringDecoder } from 'node:string_decoder';

export class LineSplitter {
  private pending = '';
  private skipping = false;
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly maxLength: number) {}

  // The complete lines in this chunk, in order.
  push(chunk: Buffer | string): string[] {
    const lines: string[] = [];
    const parts = (this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))).split('\n');
    this.pending = parts.pop() ?? '';
    for (const part of parts) {
      if (!this.skipping) lines.push(this.cut(part.replace(/\r$/, '')));
      this.skipping = false;
    }
    if (this.pending.length > this.maxLength) {
      if (!this.skipping) lines.push(`${this.pending.slice(0, this.maxLength)}…`);
      this.pending = '';
      this.skipping = true;
    }
    return lines;
  }

  private cut(line: string): string {
    return line.length > this.maxLength ? `${line.slice(0, this.maxLength)}…` : line;
  }

  // The unterminated rest, when the stream ends.
  flush(): string[] {
    const rest = this.skipping ? '' : this.pending + this.decoder.end();
    this.pending = '';
    this.skipping = false;
    return rest === '' ? [] : [rest];
  }
}
