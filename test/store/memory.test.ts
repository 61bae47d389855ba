import { MemoryStore } from '../../lib/store/memory';
import { runObjectStoreSuite } from './conformance';

runObjectStoreSuite('MemoryStore', async () => {
  const store = new MemoryStore();
  return {
    store,
    corrupt: async (id: string) => store._corrupt(id, 17),
    cleanup: async () => undefined,
  };
});
