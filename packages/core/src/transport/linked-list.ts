/** The links a `LinkedList` keeps on each of its items. */
export interface ListLinks<T> {
  prev: T | undefined;
  next: T | undefined;
}

/**
 * A set of objects, in insertion order, linked through the objects themselves: adding and deleting
 * hash nothing and allocate nothing. For what every message passes through (deliveries held, tasks
 * running, publishes awaiting their confirm), where a `Set` would be the obvious choice and is a poor
 * one: as it fills and empties it moves to new hash tables, and a discarded table that had reached
 * V8's old generation still points at the items it held, so the young-generation collector must keep
 * them — and all they point to — until the next full collection. Measured on a 60,000-task NATS drain:
 * with one such `Set` every scavenge kept ~2.3 MB and promoted ~1.9 MB (3.6–4.6 ms pause each, plus
 * as much on helper threads); with this list, 0.5 MB and 0.2 MB.
 *
 * An item is in one list at a time; `delete` clears its links. Iteration walks a copy, so the loop
 * body may add or delete items.
 */
export class LinkedList<T extends ListLinks<T>> implements Iterable<T> {
  private head: T | undefined;
  private tail: T | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(item: T): void {
    item.prev = this.tail;
    item.next = undefined;
    if (this.tail === undefined) this.head = item;
    else this.tail.next = item;
    this.tail = item;
    this.count++;
  }

  /** Remove `item`; false when it was not in the list. */
  delete(item: T): boolean {
    if (item.prev !== undefined) item.prev.next = item.next;
    else if (this.head === item) this.head = item.next;
    else return false;
    if (item.next !== undefined) item.next.prev = item.prev;
    else this.tail = item.prev;
    item.prev = item.next = undefined;
    this.count--;
    return true;
  }

  /** Remove every item (and its links). */
  clear(): void {
    let x = this.head;
    while (x !== undefined) {
      const next = x.next;
      x.prev = x.next = undefined;
      x = next;
    }
    this.head = this.tail = undefined;
    this.count = 0;
  }

  /** The items, oldest first, as an array. */
  values(): T[] {
    const out: T[] = [];
    for (let x = this.head; x !== undefined; x = x.next) out.push(x);
    return out;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.values()[Symbol.iterator]();
  }
}
