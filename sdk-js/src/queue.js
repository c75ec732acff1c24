/**
 * The bounded in-memory queue between `emit()` and the sender.
 *
 * A fixed-size ring: `push` and `shift` are O(1) and allocate nothing, so an
 * emit costs an array store. Its bound (`queueSize`) is what keeps memory flat
 * whatever the broker does: 10 000 events of about 400 bytes are about 4 MB.
 * When it is full the client's `onFull` policy decides (client.js).
 */

export class RingQueue {
  /** @param {number} capacity maximum number of items */
  constructor(capacity) {
    this.capacity = capacity;
    this.items = new Array(capacity);
    this.head = 0;
    this.size = 0;
  }

  get full() {
    return this.size >= this.capacity;
  }

  /** Append; returns false (and stores nothing) when full. */
  push(item) {
    if (this.size >= this.capacity) return false;
    let at = this.head + this.size;
    if (at >= this.capacity) at -= this.capacity;
    this.items[at] = item;
    this.size++;
    return true;
  }

  peek() {
    return this.size === 0 ? undefined : this.items[this.head];
  }

  shift() {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    this.size--;
    return item;
  }

  /** Remove and return everything, oldest first. */
  drain() {
    const out = [];
    while (this.size > 0) out.push(this.shift());
    return out;
  }
}
