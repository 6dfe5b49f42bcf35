// What a subprocess printed, kept bounded: its head and its tail, the middle dropped and counted
// (rsync's first lines say what it was doing, its last ones why it stopped).
/** Keeps the head and tail of a long output, dropping the middle. */
export class BoundedText {
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private dropped = 0;
  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    if (this.headBytes < this.limit / 2) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      return;
    }
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes > this.limit / 2 && this.tail.length > 1) {
      const first = this.tail.shift()!;
      this.tailBytes -= first.length;
      this.dropped += first.length;
    }
  }

  text(): string {
    const middle = this.dropped ? Buffer.from(`\n[... ${this.dropped} bytes of rsync output dropped ...]\n`) : Buffer.alloc(0);
    return Buffer.concat([...this.head, middle, ...this.tail]).toString('utf8');
  }
}
