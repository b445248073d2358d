/**
 * A first-in first-out queue on an array with a head index: O(1) push, shift and unshift, no node per
 * item. The kit's buffer of messages not yet handed out, and the memory broker's ready levels.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Put `item` first (a message given back goes to the head of its queue). */
  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Remove the items for which `pred` is true, keeping the order of the rest; returns how many went. */
  removeWhere(pred: (item: T) => boolean): number {
    const before = this.size;
    const kept = (this.items.slice(this.head) as T[]).filter((item) => !pred(item));
    this.items = kept;
    this.head = 0;
    return before - kept.length;
  }

  /** Remove and return everything, in order. */
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}
