/**
 * A pprof table (functions, locations, mappings) whose entries are identified by what they say:
 * the same key gets the same id, ids are 1-based in insertion order, as pprof numbers them.
 */
export class Interned<T> {
  readonly items: T[] = [];
  private readonly ids = new Map<string, number>();

  /** The id of `key`; `make(id)` builds the entry the first time the key is seen. */
  idOf(key: string, make: (id: number) => T): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.items.length + 1;
      this.ids.set(key, id);
      this.items.push(make(id));
    }
    return id;
  }
}
