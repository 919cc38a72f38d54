// A handler's log lines (job.log), kept per attempt and sent with heartbeats and the outcome, as
// the Python Worker does: at most MAX_PENDING_CHARS wait between sends (the oldest lines are dropped
// first, with a marker line saying how many), a line is cut at MAX_LINE_CHARS, and text the server
// cannot store (NUL, unpaired surrogates) is replaced with U+FFFD. Logging never throws into a handler.

/** The server keeps the last 64 Ki characters per attempt; a little less waits here, so a marker fits. */
export const MAX_PENDING_CHARS = 60 * 1024;
export const MAX_LINE_CHARS = 16 * 1024;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function cleanText(text: string): string {
  return text.replace(LONE_SURROGATE, "\uFFFD").replaceAll("\0", "\uFFFD");
}

export function formatLine(level: string, message: string, when: Date = new Date()): string {
  let text = message;
  if (text.length > MAX_LINE_CHARS) {
    text = `${text.slice(0, MAX_LINE_CHARS)}...[spool: line cut, ${text.length - MAX_LINE_CHARS} more characters]`;
  }
  return cleanText(`${when.toISOString()} ${level} ${text}\n`);
}

export class AttemptLog {
  private lines: string[] = [];
  private size = 0;
  private dropped = 0;
  private droppedChars = 0;

  write(level: string, message: string): void {
    this.add(formatLine(level, message), false);
  }

  /** Everything not sent yet, with a marker where lines were dropped; empties the buffer. */
  take(): string {
    if (this.lines.length === 0) {
      return "";
    }
    const marker =
      this.dropped > 0 ? `[spool: ${this.dropped} log lines (${this.droppedChars} characters) dropped here]\n` : "";
    const text = marker + this.lines.join("");
    this.lines = [];
    this.size = this.dropped = this.droppedChars = 0;
    return text;
  }

  /** Lines a failed send took: they go with the next one (still within the bound). */
  putBack(text: string | undefined): void {
    if (text) {
      this.add(text, true);
    }
  }

  private add(text: string, front: boolean): void {
    if (front) {
      this.lines.unshift(text);
    } else {
      this.lines.push(text);
    }
    this.size += text.length;
    let drop = 0;
    while (this.size > MAX_PENDING_CHARS && this.lines.length - drop > 1) {
      const old = this.lines[drop++]!;
      this.size -= old.length;
      this.dropped += Math.max(1, old.split("\n").length - 1);
      this.droppedChars += old.length;
    }
    if (drop > 0) {
      this.lines = this.lines.slice(drop);
    }
  }
}
