/**
 * Every stream, consumer, subject and bucket name the transport creates, derived from the app
 * `prefix`. Names are plain tokens: JetStream forbids `.`, `*`, `>` and whitespace in stream and
 * consumer names, and a `.` in a subject starts a new token.
 */

const PLAIN = /^[A-Za-z0-9_-]+$/;

/** A validated namespace for one app. */
export function checkPrefix(prefix: string): string {
  if (!PLAIN.test(prefix) || prefix.length > 64) {
    throw new RangeError(`prefix must be 1–64 characters of A–Z, a–z, 0–9, "_" or "-", got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

/**
 * One subject token (and consumer-name part) for any string: plain names pass unchanged, others
 * become `=` plus the hex of their UTF-8 bytes. Plain names never contain `=`, so the two never collide.
 */
export function token(name: string): string {
  if (PLAIN.test(name) && name.length <= 128) return name;
  return `=${Buffer.from(name, 'utf8').toString('hex')}`;
}

/** The string a {@link token} was made from. */
export function untoken(tok: string): string {
  return tok.startsWith('=') ? Buffer.from(tok.slice(1), 'hex').toString('utf8') : tok;
}

/** Names of one app's streams, consumers and subjects. */
export class Names {
  readonly tasksStream: string;
  readonly delayedStream: string;
  readonly deadStream: string;
  readonly moverConsumer = 'mover';

  constructor(readonly prefix: string) {
    checkPrefix(prefix);
    this.tasksStream = `${prefix}_tasks`;
    this.delayedStream = `${prefix}_delayed`;
    this.deadStream = `${prefix}_dead`;
  }

  /** The stream subjects: `<prefix>.tasks.>` and so on. */
  get tasksSubjects(): string {
    return `${this.prefix}.tasks.>`;
  }
  get delayedSubjects(): string {
    return `${this.prefix}.delayed.>`;
  }
  get deadSubjects(): string {
    return `${this.prefix}.dead.>`;
  }

  /** Subject of a queue's priority level (level 0, the default, has no suffix). */
  task(queue: string, level = 0): string {
    return `${this.prefix}.tasks.${token(queue)}${level > 0 ? `.p${level}` : ''}`;
  }
  delayed(queue: string, level = 0): string {
    return `${this.prefix}.delayed.${token(queue)}${level > 0 ? `.p${level}` : ''}`;
  }
  dead(queue: string): string {
    return `${this.prefix}.dead.${token(queue)}`;
  }
  /** Durable consumer of a queue's level. */
  consumer(queue: string, level = 0): string {
    return `q_${token(queue)}${level > 0 ? `=p${level}` : ''}`;
  }
  broadcast(channel: string): string {
    return `${this.prefix}.bc.${token(channel)}`;
  }

  /** The task subject a delayed or dead subject goes back to, or undefined if it is not one of ours. */
  taskSubjectFor(subject: string): string | undefined {
    for (const kind of ['.delayed.', '.dead.']) {
      const head = `${this.prefix}${kind}`;
      if (subject.startsWith(head)) return `${this.prefix}.tasks.${subject.slice(head.length)}`;
    }
    return undefined;
  }
}
